"""Agent and Team status as `kubectl get` and `kubectl describe` show them."""

from __future__ import annotations

from typing import Any

from podium.api.team import TeamSpec
from podium.dataplane.records import parse_replica
from podium.engine import availability
from podium.engine.resilience import Breaker
from podium.operator.agents import status as agent_status
from podium.operator.agents.health import HealthReport, PodView, evaluate
from podium.operator.agents.reconcile import pod_view
from podium.operator.agents.status import BACKEND_RECOVERY_GRACE_SECONDS, Observed
from podium.operator.conditions import parse_rfc3339
from podium.operator.orchestrations.directory import agent_info
from podium.operator.teams import status as team_status
from podium.operator.teams.status import AgentView

T0 = 1_700_000_000.0


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def agent(obs: Observed, old: dict[str, Any] | None = None, now: float = T0) -> dict[str, Any]:
    return agent_status.status(obs, selector="podium.dev/agent=x", generation=3, old=old, now=now)


def test_all_ready_agent() -> None:
    s = agent(Observed(desired=2, replicas=2, ready=2, health=HealthReport(2, 2, 2, load=0.25)))
    assert s["phase"] == "Ready"
    assert s["ready"] == "2/2" and s["readyReplicas"] == 2 and s["replicas"] == 2
    assert s["selector"] == "podium.dev/agent=x"
    assert s["load"] == 0.25 and "breaker" not in s  # not read this round: nothing to show
    assert cond(s, "Ready")["status"] == "True"
    assert cond(s, "Degraded")["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in s["conditions"])


def test_phases() -> None:
    assert agent(Observed(desired=1, replicas=1, ready=0))["phase"] == "Initializing"
    assert agent(Observed(desired=1, replicas=1, ready=0), old={"phase": "Ready"})["phase"] == "Degraded"
    busy = Observed(desired=1, replicas=1, ready=1, health=HealthReport(1, 1, 1, load=0.9))
    assert agent(busy)["phase"] == "Busy"
    assert agent(Observed(desired=1, replicas=1, ready=1, maintenance=True))["phase"] == "Maintenance"
    assert agent(Observed(desired=1, replicas=1, ready=1, breaker=Breaker("open", 5, T0)))["phase"] == "Degraded"
    assert agent(Observed(desired=1, replicas=1, ready=1, error="bad"))["phase"] == "Error"
    assert agent(Observed(desired=1, replicas=1, ready=1, terminating=True))["phase"] == "Terminating"


def test_scaled_to_zero_is_ready_not_available() -> None:
    s = agent(Observed(desired=0, replicas=0, ready=0))
    assert s["phase"] == "Ready" and s["ready"] == "0/0" and s["load"] == 0.0
    assert cond(s, "Ready")["reason"] == "ScaledToZero" and "pass it over" in cond(s, "Ready")["message"]
    assert cond(s, "Available")["status"] == "False"
    woken = agent(Observed(desired=0, replicas=0, ready=0, autoscaled=True))
    assert "wakes it" in cond(woken, "Ready")["message"]
    # Woken from zero, its first replica starting: Initializing, not Degraded (nothing was lost).
    assert agent(Observed(desired=1, replicas=1, ready=0, autoscaled=True), old=s)["phase"] == "Initializing"


def test_an_agent_whose_deployment_is_not_created_yet_is_not_ready_even_at_zero_replicas() -> None:
    s = agent(Observed(desired=0, replicas=0, ready=0, workload=False))
    assert s["phase"] == "Initializing"
    assert cond(s, "Ready")["status"] == "False" and cond(s, "Ready")["reason"] == "Creating"
    assert agent(Observed(desired=0, replicas=0, ready=0, workload=False, error="bad"))["phase"] == "Error"


def test_the_engines_dispatch_breaker_shows_with_its_count_and_opening_time() -> None:
    closed = agent(Observed(desired=1, replicas=1, ready=1, breaker=Breaker()))
    assert closed["breaker"] == {"state": "closed", "failures": 0} and closed["phase"] == "Ready"
    opened = agent(Observed(desired=1, replicas=1, ready=1, breaker=Breaker("open", 5, T0)))
    assert opened["breaker"] == {"state": "open", "failures": 5, "openedAt": "2023-11-14T22:13:20Z"}
    assert opened["phase"] == "Degraded" and cond(opened, "Degraded")["reason"] == "BreakerOpen"
    assert "5 failed attempts in a row" in opened["message"]
    probing = agent(Observed(desired=1, replicas=1, ready=1, breaker=Breaker("halfOpen", 5, T0, T0 + 60)))
    assert cond(probing, "Degraded")["reason"] == "BreakerHalfOpen"
    # A round that could not read Redis keeps what was shown.
    assert agent(Observed(desired=1, replicas=1, ready=1), old=opened)["breaker"] == opened["breaker"]


def test_invalid_spec_tells_why() -> None:
    s = agent(Observed(desired=1, replicas=1, ready=1, error="spec.template: unknown field(s) hostNetwork"))
    assert cond(s, "Ready")["reason"] == "InvalidSpec"
    assert "hostNetwork" in cond(s, "Ready")["message"]
    assert "hostNetwork" in s["message"]


def test_lapsed_heartbeat_shows_degraded_with_replica_names() -> None:
    s = agent(Observed(desired=2, replicas=2, ready=2, health=HealthReport(2, 2, 1, lapsed=["x-abc"])))
    assert s["phase"] == "Degraded"
    assert cond(s, "Degraded")["reason"] == "HeartbeatLost" and "x-abc" in cond(s, "Degraded")["message"]


def test_transition_time_moves_only_on_status_change() -> None:
    first = agent(Observed(desired=1, replicas=1, ready=1), now=T0)
    same = agent(Observed(desired=1, replicas=1, ready=1), old=first, now=T0 + 100)
    assert cond(same, "Ready")["lastTransitionTime"] == cond(first, "Ready")["lastTransitionTime"]
    down = agent(Observed(desired=1, replicas=1, ready=0), old=first, now=T0 + 200)
    assert cond(down, "Ready")["lastTransitionTime"] != cond(first, "Ready")["lastTransitionTime"]


def view(name: str, priority: str = "important", phase: str = "Ready", **labels: str) -> AgentView:
    return AgentView(name=name, labels=labels, priority=priority, phase=phase, replicas=1)


def team(spec: dict[str, Any], agents: list[AgentView]) -> dict[str, Any]:
    res = team_status.resolve(TeamSpec.model_validate(spec), {a.name: a for a in agents})
    return team_status.status(res, generation=1, old=None, now=T0)


def test_team_resolves_names_and_selectors_without_duplicates() -> None:
    s = team(
        {"lead": "plan", "members": [{"agent": "rev"}, {"selector": {"matchLabels": {"team": "q"}}}]},
        [view("rev", team="q"), view("test", team="q"), view("other"), view("plan")],
    )
    assert s["members"] == ["rev", "test", "plan"]
    assert s["memberCount"] == 3 and s["readyMembers"] == 3 and s["ready"] == "3/3"
    assert s["degraded"] is False
    assert cond(s, "Ready")["status"] == "True"


def test_team_with_a_missing_agent_says_so() -> None:
    s = team({"members": [{"agent": "rev"}, {"agent": "ghost"}]}, [view("rev")])
    assert s["missing"] == ["ghost"]
    c = cond(s, "MembersResolved")
    assert c["status"] == "False" and c["reason"] == "AgentNotFound" and "ghost" in c["message"]
    assert s["degraded"] is True


def test_optional_member_down_degrades_critical_member_down_is_not_ready() -> None:
    optional_down = team(
        {"members": [{"agent": "a"}, {"agent": "b"}]},
        [view("a", "critical"), view("b", "optional", phase="Degraded")],
    )
    assert optional_down["degraded"] is True
    assert cond(optional_down, "Ready")["status"] == "True"
    critical_down = team(
        {"members": [{"agent": "a"}, {"agent": "b"}]},
        [view("a", "critical", phase="Initializing"), view("b", "optional")],
    )
    assert cond(critical_down, "Ready")["status"] == "False"
    assert cond(critical_down, "Ready")["reason"] == "CriticalMemberDown"
    assert "a" in cond(critical_down, "Ready")["message"]


def test_replicas_that_keep_exiting_say_which_how_often_and_how_and_degrade_the_agent() -> None:
    def pod(restarts: int, ran: float = 2.0, **kw: Any) -> PodView:
        exit = "exit code 1 (Error)"
        return PodView("x-1", True, False, T0, restarts=restarts, last_exit=exit, last_run_seconds=ran, **kw)

    assert agent_status.stuck([pod(1)], "ns", ready=0, now=T0) is None  # one restart: it may be starting still
    assert agent_status.stuck([pod(5)], "ns", ready=1, now=T0) is None  # a ready replica serves meanwhile
    assert agent_status.stuck([pod(5, ran=3600)], "ns", ready=0, now=T0) is None  # killed after an hour's work
    assert agent_status.stuck([pod(5, terminating=True)], "ns", ready=0, now=T0) is None  # replaced by a fix
    looping = agent_status.stuck([pod(4)], "ns", ready=0, now=T0)
    why = "replica x-1 exited 4 times, last exit code 1 (Error); its log: kubectl logs -n ns x-1 --previous"
    assert looping is not None and (looping.reason, looping.message) == ("ReplicasCrashing", why)
    s = agent(Observed(desired=1, replicas=1, ready=0, stuck=looping))
    assert s["phase"] == "Degraded"
    assert (cond(s, "Available")["reason"], cond(s, "Available")["message"]) == ("ReplicasCrashing", why)
    assert (cond(s, "Degraded")["status"], cond(s, "Degraded")["reason"]) == ("True", "ReplicasCrashing")


def test_a_replica_whose_container_cannot_be_created_says_why_at_once() -> None:
    # The kubelet retries a missing Secret or an unpullable image for ever: no restart, no exit, nothing to wait for.
    status = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "agent",
                "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "llm-key" not found'}},
            }
        ],
    }
    pod = pod_view("x-1", status, {"creationTimestamp": "2023-11-14T22:13:20Z"})  # T0
    assert pod.cannot_start == 'CreateContainerConfigError: secret "llm-key" not found'
    assert (
        pod_view(
            "x-1", {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}, {}
        ).cannot_start
        is None
    )
    assert agent_status.stuck([pod], "ns", ready=0, now=T0 + 5) is None  # its Secret may be applied next
    blocked = agent_status.stuck([pod], "ns", ready=0, now=T0 + 10)
    assert blocked is not None and blocked.reason == "ReplicasCannotStart"
    assert blocked.message.startswith(
        'replica x-1 cannot start: CreateContainerConfigError: secret "llm-key" not found'
    )
    s = agent(Observed(desired=1, replicas=1, ready=0, stuck=blocked))
    assert s["phase"] == "Degraded" and cond(s, "Degraded")["reason"] == "ReplicasCannotStart"
    assert agent_status.stuck([pod], "ns", ready=1, now=T0 + 10) is None


def test_replicas_whose_backend_does_not_answer_make_the_agent_unavailable_saying_why() -> None:
    # A replica whose model server is down stays alive (it heartbeats) but fails /readyz and takes no work; its
    # heartbeat says why, and the Agent shows it. Runs wait for it a while (a model server restarting: within their
    # agentWaitSeconds), and once the outage is older than that they pass the agent over naming why.
    why = "its model server: cannot reach http://llm:8080/v1: Connection refused"
    beats = [parse_replica("x-1", f"0.0000 0 {int(T0 * 1000)} 15000 {why}"), parse_replica("x-2", "0.5 2 0 15000")]
    assert beats[0].problem == why and beats[1].problem is None and beats[0].lease_seconds == 15
    pods = [PodView("x-1", True, False, T0 - 300), PodView("x-2", True, False, T0 - 300)]
    report = evaluate(pods, beats, now=T0, lease_seconds=15, startup_grace_seconds=20, concurrency=4)
    assert report.problems == {"x-1": why}  # x-2's heartbeat lapsed: what it said is not news
    assert agent_status.stuck(pods, "ns", ready=1, now=T0, problems=report.problems) is None
    unavailable = agent_status.stuck(pods, "ns", ready=0, now=T0, problems=report.problems)
    assert unavailable is not None and unavailable.reason == "BackendUnavailable"
    s = agent(Observed(desired=2, replicas=2, ready=0, health=report, stuck=unavailable))
    assert s["phase"] == "Degraded" and cond(s, "Available")["message"] == f"replica x-1: {why}"
    spec = {"role": "writer", "backend": {"llm": {"baseURL": "http://llm:8080/v1", "model": "m"}}}
    obj = {"metadata": {"name": "x"}, "spec": spec, "status": s}
    down_at = parse_rfc3339(cond(s, "Available")["lastTransitionTime"])
    assert down_at is not None
    said = f"its backend is unavailable: replica x-1: {why}"
    restarting = agent_info(obj, now=down_at + 30)
    assert restarting is not None and availability.of(restarting) == availability.Availability(
        availability.State.WAKING, said
    )
    long_down = agent_info(obj, now=down_at + BACKEND_RECOVERY_GRACE_SECONDS + 1)
    assert long_down is not None and availability.of(long_down) == availability.Availability(
        availability.State.UNAVAILABLE, said
    )


def test_an_agent_whose_backend_answers_again_is_coming_back_until_a_replica_is_ready() -> None:
    # The model server is back: the replica's heartbeat no longer names a problem, but its pod passes its readiness
    # probe a few seconds later. Meanwhile the Agent is coming back (BackendRecovering), and runs wait for it as
    # they did during the outage, instead of passing it over as an Agent with no ready replica.
    spec = {"role": "writer", "backend": {"llm": {"baseURL": "http://llm:8080/v1", "model": "m"}}}
    why = "its model server: cannot reach http://llm:8080/v1: Connection refused"
    down = agent(
        Observed(desired=1, replicas=1, ready=0, stuck=agent_status.stuck([], "ns", 0, T0, {"x-1": why})), now=T0
    )
    available = cond(down, "Available")
    assert available["reason"] == "BackendUnavailable"
    assert agent_status.backend_recovering(available, {"x-1": why}, T0 + 30) is False  # still down
    assert agent_status.backend_recovering(available, {}, T0 + 30)
    back = agent(Observed(desired=1, replicas=1, ready=0, backend_back=True), old=down, now=T0 + 30)
    assert (cond(back, "Available")["reason"], back["phase"]) == ("BackendRecovering", "Degraded")
    seen = agent_info({"metadata": {"name": "x"}, "spec": spec, "status": back}, now=T0 + 31)
    assert seen is not None and availability.of(seen) == availability.Availability(
        availability.State.WAKING,
        "its backend is coming back: its replicas are becoming ready (their backend answers again)",
    )
    ready = agent(Observed(desired=1, replicas=1, ready=1, backend_back=True), old=back, now=T0 + 33)
    assert cond(ready, "Available")["status"] == "True" and ready["phase"] == "Ready"
    # An outage older than the grace is not waited for, coming back or not: the Agent is one without ready replicas.
    late = T0 + BACKEND_RECOVERY_GRACE_SECONDS + 1
    assert not agent_status.backend_recovering(cond(back, "Available"), {}, late)
    seen = agent_info({"metadata": {"name": "x"}, "spec": spec, "status": back}, now=late)
    assert seen is not None and availability.of(seen).state is availability.State.UNAVAILABLE
