"""An Agent's status from what was observed this round: phase, ready count, load, breaker, conditions (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podium.api.agent import AgentPhase, BreakerState
from podium.engine.resilience import Breaker
from podium.operator.agents.health import HealthReport, PodView
from podium.operator.conditions import Cond, false_within, merge, now_rfc3339

BUSY_LOAD = 0.8  # load at or above which an agent shows Busy
# The Available condition's reasons for replicas that waiting will not make ready (stuck): runs read them.
CRASHING = "ReplicasCrashing"  # they keep exiting
CANNOT_START = "ReplicasCannotStart"  # their container cannot be created (a missing Secret, an image not pulled)
BACKEND_UNAVAILABLE = "BackendUnavailable"  # they run but take no work: their backend's upstream does not answer
# Its backend answers again after BackendUnavailable and its replicas are passing their readiness probes again (a
# few seconds): runs still wait for it, as during the outage.
BACKEND_RECOVERING = "BackendRecovering"
# How long after its backend stopped answering an Agent counts as coming back: long enough for a model server's pod
# to be replaced and load its model, so runs ride out a restart (within their agentWaitSeconds); an older outage is
# not waited for.
BACKEND_RECOVERY_GRACE_SECONDS = 120.0
CRASH_RESTARTS = 2  # restarts of a replica, with none ready, that make its Agent's replicas crash-looping...
CRASH_UPTIME_SECONDS = 60.0  # ... when its last run ended this soon after it started (a process killed after an
# hour of work, restarting now, is not crash-looping: runs wait for it as for any replica coming back)
CANNOT_START_SECONDS = 10.0  # a container that cannot be created counts once its pod is this old (a Secret applied
# just after its Agent, by the next command or file, is not a fault)


@dataclass(frozen=True)
class Observed:
    """What one reconcile round saw of an Agent's workload."""

    desired: int  # replicas the Deployment should have
    replicas: int  # pods the Deployment has
    ready: int  # pods that pass /readyz
    health: HealthReport | None = None
    breaker: Breaker | None = None  # the engine's dispatch breaker as stored in Redis; None: not read this round
    error: str | None = None  # why the spec cannot be applied (reason: InvalidSpec)
    maintenance: bool = False
    terminating: bool = False
    replica_failed: bool = False  # a replica crashed or lost its heartbeat this round
    autoscaled: bool = False  # spec.autoscaling is set: queued work wakes it from zero
    workload: bool = True  # its Deployment exists (or was just applied): False while its creation is under way
    stuck: Cond | None = None  # no replica ready, and none will be by waiting on Kubernetes: the Available condition
    # saying why (stuck; None whenever one is ready)
    backend_back: bool = False  # no replica ready yet, but their backend answers again (backend_recovering)


def stuck(
    pods: Sequence[PodView], namespace: str, ready: int, now: float, problems: Mapping[str, str] | None = None
) -> Cond | None:
    """Why an Agent with no ready replica will not get one by waiting on Kubernetes, as its Available condition: a
    replica whose container cannot be created (a missing Secret, an image that cannot be pulled), one that keeps
    exiting (its backend cannot start: a missing tool server, a bad entrypoint), or one that runs but takes no work
    because its backend's upstream does not answer (``problems``, from the heartbeats: a model server down); None
    otherwise."""
    if ready > 0:
        return None
    blocked = next((p for p in pods if not p.terminating and p.cannot_start and _older(p, now)), None)
    if blocked is not None:
        why = f"replica {blocked.name} cannot start: {blocked.cannot_start}; its events: kubectl describe pod -n "
        return Cond("Available", False, CANNOT_START, why + f"{namespace} {blocked.name}")
    looping = crash_loop(pods, namespace)
    if looping is not None:
        return Cond("Available", False, CRASHING, looping)
    name, problem = min((problems or {}).items(), default=(None, None))
    return None if name is None else Cond("Available", False, BACKEND_UNAVAILABLE, f"replica {name}: {problem}")


def backend_recovering(before: Mapping[str, Any] | None, problems: Mapping[str, str], now: float) -> bool:
    """Whether an Agent whose backend stopped answering lately (``before``: its Available condition as last shown,
    reason BackendUnavailable or BackendRecovering) answers again (no live replica says otherwise): its replicas
    are ready again within seconds, and until then it is coming back, not down."""
    if problems or before is None or before.get("reason") not in (BACKEND_UNAVAILABLE, BACKEND_RECOVERING):
        return False
    return false_within(before, now, BACKEND_RECOVERY_GRACE_SECONDS)


def _older(pod: PodView, now: float) -> bool:
    return pod.created_at is None or now - pod.created_at >= CANNOT_START_SECONDS


def crash_loop(pods: Sequence[PodView], namespace: str) -> str | None:
    """Which replica keeps exiting, how often and how, or None."""
    looping = [
        p
        for p in pods
        if not p.terminating
        and p.restarts >= CRASH_RESTARTS
        and p.last_run_seconds is not None
        and p.last_run_seconds < CRASH_UPTIME_SECONDS
    ]
    worst = max(looping, key=lambda p: p.restarts, default=None)
    if worst is None:
        return None
    how = f", last {worst.last_exit}" if worst.last_exit else ""
    return (
        f"replica {worst.name} exited {worst.restarts} times{how}; its log: "
        f"kubectl logs -n {namespace} {worst.name} --previous"
    )


def phase(obs: Observed, previous: str | None, from_zero: bool = False) -> AgentPhase:
    """The phase this round; ``from_zero``: the last status showed no replicas wanted (a scale-up from zero)."""
    if obs.terminating:
        return AgentPhase.terminating
    if obs.error:
        return AgentPhase.error
    if not obs.workload:
        return AgentPhase.initializing
    if obs.maintenance:
        return AgentPhase.maintenance
    if breaker_state(obs) != BreakerState.closed:
        return AgentPhase.degraded
    if obs.stuck:
        return AgentPhase.degraded
    if obs.desired > 0 and obs.ready == 0:
        # Never ready yet: still starting. Was ready before: it lost every replica.
        was_up = previous in (AgentPhase.ready, AgentPhase.busy, AgentPhase.degraded) and not from_zero
        return AgentPhase.degraded if was_up else AgentPhase.initializing
    if obs.replica_failed or (obs.health is not None and obs.health.lapsed):
        return AgentPhase.degraded
    if previous == AgentPhase.degraded and obs.ready < obs.desired:
        # A lost replica keeps the Agent Degraded until its replacement is ready, not just for the round that saw
        # the loss; a plain scale-up from Ready stays Ready (its Degraded condition still says ReplicasUnavailable).
        return AgentPhase.degraded
    load = obs.health.load if obs.health is not None else None
    if load is not None and load >= BUSY_LOAD:
        return AgentPhase.busy
    return AgentPhase.ready


def conditions(obs: Observed) -> list[Cond]:
    if obs.error:
        return [
            Cond("Ready", False, "InvalidSpec", obs.error),
            Cond("Available", obs.ready > 0, "InvalidSpec", "the last valid workload keeps running"),
            Cond("Degraded", True, "InvalidSpec", obs.error),
        ]
    if obs.terminating:
        return [Cond("Ready", False, "Terminating", "the Agent is being deleted")]
    if not obs.workload:
        return [
            Cond("Ready", False, "Creating", "its Deployment is not created yet"),
            Cond("Available", False, "Creating", "its Deployment is not created yet"),
            Cond("Degraded", False, "AsExpected"),
        ]
    out: list[Cond] = []
    if obs.desired == 0:
        why = (
            "no replicas; queued work wakes it (spec.autoscaling)"
            if obs.autoscaled
            else "no replicas: runs pass it over until it is scaled up"
        )
        out.append(Cond("Ready", True, "ScaledToZero", why))
        out.append(Cond("Available", False, "ScaledToZero", "replicas is 0"))
    elif obs.maintenance:
        out.append(Cond("Ready", False, "Maintenance", "draining: finishes in-flight tasks, accepts no new ones"))
        out.append(Cond("Available", obs.ready > 0, "Maintenance", f"{obs.ready}/{obs.desired} replicas ready"))
    else:
        all_ready = obs.ready >= obs.desired
        out.append(
            Cond(
                "Ready",
                all_ready,
                "AllReplicasReady" if all_ready else "ReplicasNotReady",
                f"{obs.ready}/{obs.desired} replicas ready",
            )
        )
        if obs.stuck:
            out.append(obs.stuck)
        elif obs.backend_back and obs.ready == 0:
            back = "its replicas are becoming ready (their backend answers again)"
            out.append(Cond("Available", False, BACKEND_RECOVERING, back))
        else:
            out.append(
                Cond(
                    "Available",
                    obs.ready > 0,
                    "MinimumReplicasAvailable" if obs.ready > 0 else "NoReplicasAvailable",
                    "" if obs.ready > 0 else "no replica passes /readyz; check the pods' logs and events",
                )
            )
    degraded = _degraded(obs)
    out.append(degraded)
    return out


def breaker_state(obs: Observed) -> BreakerState:
    return BreakerState(obs.breaker.state) if obs.breaker is not None else BreakerState.closed


def _degraded(obs: Observed) -> Cond:
    state = breaker_state(obs)
    failures = obs.breaker.failures if obs.breaker is not None else 0
    if state == BreakerState.open:
        return Cond(
            "Degraded",
            True,
            "BreakerOpen",
            f"{failures} failed attempts in a row opened the circuit breaker: runs pass the agent over until its "
            "recovery timeout, then send one probe",
        )
    if state == BreakerState.half_open:
        return Cond("Degraded", True, "BreakerHalfOpen", "one probe task tests whether the agent has recovered")
    if obs.health is not None and obs.health.lapsed:
        lost = ", ".join(obs.health.lapsed)
        return Cond("Degraded", True, "HeartbeatLost", f"restarting replicas whose heartbeat lapsed: {lost}")
    if obs.stuck and not obs.maintenance:
        return Cond("Degraded", True, obs.stuck.reason, obs.stuck.message)
    if obs.desired > 0 and 0 < obs.ready < obs.desired and not obs.maintenance:
        return Cond("Degraded", True, "ReplicasUnavailable", f"only {obs.ready}/{obs.desired} replicas ready")
    return Cond("Degraded", False, "AsExpected")


def status(
    obs: Observed,
    *,
    selector: str,
    generation: int | None,
    old: dict[str, Any] | None,
    now: float | None = None,
) -> dict[str, Any]:
    """The status block to patch (wire form)."""
    old = old or {}
    current = phase(obs, old.get("phase"), from_zero=str(old.get("ready") or "").endswith("/0"))
    conds = merge(old.get("conditions"), conditions(obs), generation, now)
    message = next((c["message"] for c in conds if c["type"] == "Degraded" and c["status"] == "True"), None)
    if obs.error:
        message = obs.error
    out: dict[str, Any] = {
        "phase": current.value,
        # status.replicas backs the scale subresource: the count an HPA compares against its target.
        "replicas": obs.replicas,
        "readyReplicas": obs.ready,
        "ready": f"{obs.ready}/{obs.desired}",
        "selector": selector,
        "conditions": conds,
        "message": message,
        "observedGeneration": generation,
    }
    if obs.breaker is not None:
        out["breaker"] = breaker_fields(obs.breaker)
    elif old.get("breaker") is not None:
        out["breaker"] = old["breaker"]  # Redis unreadable this round: keep what was shown
    if obs.health is not None and obs.health.load is not None:
        out["load"] = obs.health.load
    elif obs.desired == 0 or obs.replicas == 0:
        out["load"] = 0.0
    return out


def breaker_fields(breaker: Breaker) -> dict[str, Any]:
    """status.breaker (wire form) from the engine's breaker."""
    out: dict[str, Any] = {"state": BreakerState(breaker.state).value, "failures": breaker.failures}
    if breaker.opened_at:
        out["openedAt"] = now_rfc3339(breaker.opened_at)
    return out
