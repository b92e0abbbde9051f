"""Health of an Agent's replicas from pods and heartbeats (pure logic, no I/O).

A pod can look alive (Running, even Ready for a while) while the agent inside is frozen or wedged; only the
heartbeat it writes to Redis tells. A replica whose heartbeat lapsed past the lease while its pod is Running is
restarted (its pod deleted; the Deployment makes a new one) and its in-flight tasks are reclaimed by the bus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podium.dataplane.records import ReplicaInfo


@dataclass(frozen=True)
class PodView:
    """What health evaluation needs of a pod."""

    name: str
    running: bool
    ready: bool
    started_at: float | None  # when the pod started running, epoch seconds
    terminating: bool = False
    restarts: int = 0
    last_exit: str | None = None  # how its container last ended, e.g. "exit code 1 (Error)"
    last_run_seconds: float | None = None  # how long that run of the container lasted
    cannot_start: str | None = None  # why a container of it cannot be created, which waiting does not fix
    created_at: float | None = None  # when the pod was created, epoch seconds


@dataclass(frozen=True)
class HealthReport:
    pods: int
    ready: int
    alive: int  # pods whose heartbeat is within the lease
    lapsed: list[str] = field(default_factory=list)  # pods to restart: Running but heartbeat lapsed
    load: float | None = None  # in-flight / capacity over replicas that heartbeat
    heartbeats_known: bool = True
    problems: dict[str, str] = field(default_factory=dict)  # pod -> why it takes no work (its backend is down)


def evaluate(
    pods: list[PodView],
    heartbeats: list[ReplicaInfo] | None,
    *,
    now: float,
    lease_seconds: float,
    startup_grace_seconds: float,
    concurrency: int,
) -> HealthReport:
    """Judge each live pod by its heartbeat. ``heartbeats=None`` means Redis could not be read: judge nothing."""
    live = [p for p in pods if not p.terminating]
    ready = sum(1 for p in live if p.ready)
    if heartbeats is None:
        return HealthReport(pods=len(live), ready=ready, alive=0, heartbeats_known=False)
    seen = {h.replica: h for h in heartbeats}
    lapsed: list[str] = []
    alive = 0
    in_flight = 0
    problems: dict[str, str] = {}
    for pod in live:
        beat = seen.get(pod.name)
        fresh = beat is not None and now - beat.last_seen <= lease_seconds
        if fresh and beat is not None:
            alive += 1
            in_flight += beat.in_flight
            if beat.problem:
                problems[pod.name] = beat.problem
            continue
        if not pod.running or pod.started_at is None:
            continue  # not started yet, or already failing in a way the kubelet and Deployment handle
        # A pod that has run longer than the grace period (start-up + one lease) must be heartbeating.
        if now - pod.started_at > startup_grace_seconds + lease_seconds:
            lapsed.append(pod.name)
    load = None if alive == 0 else round(in_flight / (alive * max(1, concurrency)), 3)
    return HealthReport(pods=len(live), ready=ready, alive=alive, lapsed=sorted(lapsed), load=load, problems=problems)
