"""Heartbeat-driven restarts and the circuit breaker."""

from __future__ import annotations

from podium.api.agent import BreakerState
from podium.dataplane.records import ReplicaInfo
from podium.operator.agents.health import Breaker, HealthReport, PodView, evaluate, step_breaker

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


def step(b: Breaker, failures: int, healthy: bool, at: float) -> Breaker:
    return step_breaker(b, new_failures=failures, healthy=healthy, now=at, threshold=3, recovery_seconds=60)


def test_breaker_opens_after_threshold_then_half_opens_then_closes() -> None:
    b = Breaker(BreakerState.closed, 0)
    b = step(b, 2, False, NOW)
    assert b.state == BreakerState.closed
    b = step(b, 1, False, NOW + 1)
    assert b.state == BreakerState.open and b.opened_at == NOW + 1
    b = step(b, 0, True, NOW + 30)
    assert b.state == BreakerState.open
    b = step(b, 0, False, NOW + 61)
    assert b.state == BreakerState.half_open
    b = step(b, 0, True, NOW + 62)
    assert b == Breaker(BreakerState.closed, 0, None)


def test_half_open_breaker_reopens_on_failure() -> None:
    b = step(Breaker(BreakerState.half_open, 3, NOW), 1, False, NOW + 100)
    assert b.state == BreakerState.open and b.opened_at == NOW + 100


def test_healthy_rounds_forgive_failures_slowly() -> None:
    b = step(Breaker(BreakerState.closed, 2), 0, True, NOW)
    assert b.failures == 1
    b = step(b, 0, True, NOW)
    assert b.failures == 0
