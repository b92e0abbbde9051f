"""The AgentDirectory built from raw Agent and Team objects, and when a run may start."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.api.orchestration import OrchestrationSpec
from podium.operator.orchestrations import directory as od


def agent(name: str, ready: int = 1, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"role": spec.pop("role", "worker"), "backend": {"command": {"args": ["cat"]}}, **spec},
        "status": {"readyReplicas": ready, "load": 0.25},
    }


def team(name: str, members: list[dict[str, Any]], lead: str | None = None, resolved: list[str] | None = None) -> Any:
    obj: dict[str, Any] = {"metadata": {"name": name}, "spec": {"members": members, "lead": lead}}
    if resolved is not None:
        obj["status"] = {"members": resolved}
    return obj


def pipeline(**extra: Any) -> OrchestrationSpec:
    return OrchestrationSpec.model_validate(
        {"strategy": "pipeline", "pipeline": {"stages": [{"name": "a", "role": "worker"}]}, **extra}
    )


def test_agents_carry_spec_and_live_status_into_the_directory() -> None:
    snap = od.Snapshot(
        agents=[
            agent(
                "w1",
                ready=2,
                labels={"tier": "gold"},
                replicas=2,
                priority="critical",
                capabilities=[{"name": "python", "level": 0.9}],
                pricing={"perTask": 0.01},
            ),
            {"metadata": {"name": "broken"}, "spec": {"role": "x"}},  # no backend: skipped, not fatal
        ],
        teams=[],
    )
    d = od.build(snap)
    assert [a.name for a in d.all()] == ["w1"]
    w1 = d.get("w1")
    assert (w1.ready_replicas, w1.replicas, w1.priority, w1.load) == (2, 2, "critical", 0.25)
    assert w1.capabilities == {"python": 0.9} and w1.pricing.per_task == 0.01 and w1.labels == {"tier": "gold"}


def test_an_agent_that_lost_its_last_ready_replica_moments_ago_is_recovering_then_unavailable() -> None:
    from podium.engine.availability import State, of

    def lost(at: str) -> dict[str, Any]:
        obj = agent("w", ready=0, replicas=1)
        available = {"type": "Available", "status": "False", "reason": "NoReplicasAvailable", "lastTransitionTime": at}
        obj["status"] |= {"phase": "Degraded", "conditions": [available]}
        return obj

    lost_at = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    stamp = "2027-01-15T08:00:00Z"
    # A pod restarting, agents reconnecting after a Redis restart: the run waits for it (within agentWaitSeconds)
    moments = od.agent_info(lost(stamp), now=lost_at + 10)
    assert moments is not None and of(moments).state is State.WAKING
    assert of(moments).reason == "none of its 1 replicas is ready since moments ago"
    # ... but not for long: past the grace it is unavailable and passed over, as one without ready replicas is.
    gone = od.agent_info(lost(stamp), now=lost_at + od.RECOVERY_GRACE_SECONDS + 1)
    assert gone is not None and of(gone).state is State.UNAVAILABLE
    assert of(gone).reason == "none of its 1 replicas is ready"


def test_team_members_come_from_status_else_from_names_and_selectors() -> None:
    agents = [agent("a", labels={"team": "x"}), agent("b", labels={"team": "x"}), agent("c")]
    d = od.build(
        od.Snapshot(
            agents=agents,
            teams=[
                team("resolved", [{"agent": "a"}], resolved=["a", "c"]),
                team("fresh", [{"agent": "c"}, {"selector": {"matchLabels": {"team": "x"}}}], lead="c"),
            ],
        )
    )
    assert [a.name for a in d.in_team("resolved")] == ["a", "c"]
    assert [a.name for a in d.in_team("fresh")] == ["c", "a", "b"] and d.lead("fresh") == "c"


def test_readiness_explains_what_a_pending_run_waits_for() -> None:
    d = od.build(od.Snapshot(agents=[agent("a", ready=0, labels={"k": "v"}), agent("b")], teams=[]))
    missing = od.readiness(pipeline(team="nope"), d)
    assert (missing.ok, missing.reason) == (False, "TeamNotFound") and "nope" in missing.message
    empty = od.readiness(pipeline(agentSelector={"matchLabels": {"k": "other"}}), d)
    assert (empty.ok, empty.reason) == (False, "NoAgents")


def test_a_run_waits_for_every_agent_its_spec_names() -> None:
    d = od.build(od.Snapshot(agents=[agent("a"), agent("b")], teams=[]))
    stages = [{"name": "s1", "agent": "a", "fallback": "gone"}, {"name": "s2", "agent": "later"}]
    spec = OrchestrationSpec.model_validate({"strategy": "pipeline", "pipeline": {"stages": stages}})
    r = od.readiness(spec, d)
    assert (r.ok, r.reason) == (False, "AgentNotFound")
    assert r.message == "agent(s) not in this namespace: gone (stage 's1'), later (stage 's2')"
    # Every strategy's named agents count, including those of a block left to its defaults.
    market = OrchestrationSpec.model_validate({"strategy": "market", "market": {"integrator": "boss"}})
    assert od.readiness(market, d).reason == "AgentNotFound"
    swarm = OrchestrationSpec.model_validate({"strategy": "swarm"})
    assert od.readiness(swarm, d).ok
    # An Agent that exists but is outside the run's scope is the engine's to refuse (InvalidSpec), not awaited.
    scoped = OrchestrationSpec.model_validate(
        {"strategy": "pipeline", "agentSelector": {"matchLabels": {"k": "v"}}, "pipeline": {"stages": stages[1:]}}
    )
    with_label = od.build(od.Snapshot(agents=[agent("a", labels={"k": "v"}), agent("later")], teams=[]))
    assert od.readiness(scoped, with_label).ok


def test_an_agent_that_is_not_ready_holds_no_run() -> None:
    # The engine decides per agent when a step needs one; the run does not wait for all of them up front.
    d = od.build(od.Snapshot(agents=[agent("a", ready=0, labels={"k": "v"}), agent("b")], teams=[]))
    assert od.readiness(pipeline(), d).ok
    assert od.readiness(pipeline(agentSelector={"matchLabels": {"k": "v"}}), d).ok


def test_what_the_engine_needs_to_decide_availability() -> None:
    fresh = agent("fresh", ready=0)
    fresh.pop("status")  # just created: no status yet
    lost = agent("lost", ready=0)
    lost["status"]["phase"] = "Degraded"
    woken = agent("woken", ready=0, replicas=0, autoscaling={"minReplicas": 0, "maxReplicas": 2})
    d = od.build(od.Snapshot(agents=[fresh, lost, woken], teams=[]))
    assert d.get("fresh").starting and not d.get("lost").starting
    assert d.get("woken").autoscaled and not d.get("fresh").autoscaled


def test_a_teams_role_map_reaches_the_engine() -> None:
    roles = {"research": "coder", "analysis": "tester", "synthesis": "reviewer"}
    dev = team("dev", [{"agent": "a"}])
    dev["spec"]["roles"] = roles
    d = od.build(od.Snapshot(agents=[agent("a")], teams=[dev, team("plain", [{"agent": "a"}])]))
    assert [d.team("dev").role(p, "default") for p in roles] == ["coder", "tester", "reviewer"]
    assert d.team("plain").role("research", "researcher") == "researcher"


def test_hierarchical_without_a_team_needs_every_named_team() -> None:
    spec = OrchestrationSpec.model_validate({"strategy": "hierarchical", "hierarchical": {"teams": ["t1", "t2"]}})
    d = od.build(od.Snapshot(agents=[agent("a")], teams=[team("t1", [{"agent": "a"}])]))
    r = od.readiness(spec, d)
    assert (r.ok, r.reason) == (False, "TeamNotFound") and "t2" in r.message and "t1" not in r.message
    both = od.build(
        od.Snapshot(agents=[agent("a")], teams=[team("t1", [{"agent": "a"}]), team("t2", [{"agent": "a"}])])
    )
    assert od.readiness(spec, both).ok


class CountingKube:
    """Just enough of Kube for Snapshots: counts the LISTs it serves."""

    def __init__(self) -> None:
        self.lists: list[tuple[str, str | None]] = []

    def list_objects(self, plural: str, namespace: str, resource_version: str | None = None) -> list[dict[str, Any]]:
        self.lists.append((plural, resource_version))
        return [{"metadata": {"name": f"{plural}-1"}}]

    async def run(self, fn: Any, *args: Any) -> Any:
        await asyncio.sleep(0)
        return fn(*args)


async def test_runs_starting_together_share_one_list_of_agents_and_teams() -> None:
    kube = CountingKube()
    snapshots = od.Snapshots(kube, seconds=60)  # type: ignore[arg-type]
    got = await asyncio.gather(*(snapshots.fetch("ns") for _ in range(200)))
    assert all(g.agents == got[0].agents for g in got) and got[0].teams[0]["metadata"]["name"] == "teams-1"
    assert sorted(kube.lists) == [("agents", "0"), ("teams", "0")]  # once, from the API server's watch cache
    await snapshots.fetch("other")
    assert len(kube.lists) == 4
    fresh = od.Snapshots(kube, seconds=0)  # type: ignore[arg-type]
    await fresh.fetch("ns")
    await asyncio.sleep(0.01)
    await fresh.fetch("ns")
    assert len(kube.lists) == 8


async def test_runs_refreshing_their_view_share_one_list_and_one_directory_per_snapshot() -> None:
    from podium.operator.orchestrations.run import Deps

    kube = CountingKube()
    deps = Deps(kube=kube, redis=None, post_event=lambda *_: None, snapshots=od.Snapshots(kube, seconds=60))  # type: ignore[arg-type]
    views = await asyncio.gather(*(deps.directory("ns") for _ in range(200)))
    assert all(v is views[0] for v in views)  # built once: 200 runs do not each validate every Agent again
    assert sorted(kube.lists) == [("agents", "0"), ("teams", "0")]
    alone = Deps(kube=kube, redis=None, post_event=lambda *_: None)  # type: ignore[arg-type]
    await alone.directory("ns")  # no shared snapshots: its own read
    assert len(kube.lists) == 4


class LaggingKube(CountingKube):
    """The API server's watch cache (resourceVersion 0) has not seen Agent b yet; a current read has."""

    def list_objects(self, plural: str, namespace: str, resource_version: str | None = None) -> list[dict[str, Any]]:
        self.lists.append((plural, resource_version))
        if plural == "teams":
            return []
        return [agent("a")] if resource_version == "0" else [agent("a"), agent("b")]


async def test_a_run_starts_from_what_is_stored_not_from_a_snapshot_that_lags_behind() -> None:
    from podium.operator.orchestrations.run import Controller, Deps

    kube = LaggingKube()
    deps = Deps(kube=kube, redis=None, post_event=lambda *_: None, snapshots=od.Snapshots(kube))  # type: ignore[arg-type]
    body = {"metadata": {"namespace": "ns", "name": "run", "uid": "u1"}, "spec": pipeline().to_wire()}
    directory = await Controller(deps, body, lambda: False).wait_until_startable()
    assert directory is not None and {a.name for a in directory.all()} == {"a", "b"}
    assert ("agents", None) in kube.lists  # read from storage, after the shared snapshot said it may start


def test_an_agent_whose_replicas_keep_exiting_is_unavailable_saying_why() -> None:
    from podium.engine.availability import State, of

    obj = agent("w", ready=0, replicas=1)
    why = "replica w-1 exited 3 times, last exit code 1 (Error); its log: kubectl logs -n ns w-1 --previous"
    crashing = {"type": "Available", "status": "False", "reason": "ReplicasCrashing", "message": why}
    obj["status"] |= {"phase": "Degraded", "conditions": [crashing]}
    info = od.agent_info(obj)
    assert info is not None and of(info).state is State.UNAVAILABLE  # not waited for: waiting brings no replica
    assert of(info).reason == f"its replicas keep exiting: {why}"
    blocked = agent("w", ready=0, replicas=1)
    cannot = {"type": "Available", "status": "False", "reason": "ReplicasCannotStart", "message": "replica w-1 ..."}
    blocked["status"] |= {"phase": "Degraded", "conditions": [cannot]}
    info = od.agent_info(blocked)
    assert info is not None and of(info).reason == "its replicas cannot start: replica w-1 ..."
