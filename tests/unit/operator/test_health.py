"""Heartbeat-driven restarts."""

from __future__ import annotations

from podium.dataplane.records import ReplicaInfo
from podium.operator.agents.health import HealthReport, PodView, evaluate

NOW = 1_000_000.0


def pod(name: str, *, started: float = NOW - 300, running: bool = True, ready: bool = True) -> PodView:
    return PodView(name=name, running=running, ready=ready, started_at=started)


def judge(pods: list[PodView], beats: list[ReplicaInfo] | None) -> HealthReport:
    return evaluate(pods, beats, now=NOW, lease_seconds=10, startup_grace_seconds=20, concurrency=4)


def test_a_running_pod_whose_heartbeat_lapsed_is_restarted() -> None:
    report = evaluate(
        [pod("a"), pod("b")],
        [ReplicaInfo("a", NOW - 2, in_flight=2), ReplicaInfo("b", NOW - 60)],
        now=NOW,
        lease_seconds=10,
        startup_grace_seconds=20,
        concurrency=4,
    )
    assert report.lapsed == ["b"]
    assert report.alive == 1
    assert report.load == 0.5


def test_a_pod_that_never_heartbeat_is_restarted_only_after_the_grace() -> None:
    young = judge([pod("a", started=NOW - 15)], [])
    old = judge([pod("a", started=NOW - 31)], [])
    assert young.lapsed == []
    assert old.lapsed == ["a"]


def test_pods_not_running_or_terminating_are_left_to_kubernetes() -> None:
    report = evaluate(
        [pod("a", running=False, ready=False), PodView("b", True, True, NOW - 300, terminating=True)],
        [],
        now=NOW,
        lease_seconds=10,
        startup_grace_seconds=20,
        concurrency=1,
    )
    assert report.lapsed == [] and report.pods == 1


def test_unknown_heartbeats_judge_nothing() -> None:
    report = evaluate([pod("a")], None, now=NOW, lease_seconds=10, startup_grace_seconds=20, concurrency=1)
    assert report.lapsed == [] and not report.heartbeats_known and report.ready == 1
