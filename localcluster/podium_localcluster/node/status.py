"""Pod status from the state of its containers, in the shape the API server expects. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """What the node knows about one container; `final` means it has exited and will not be restarted."""

    name: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str | None = "ContainerCreating"
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    pid: int | None = None
    final: bool = False
    last_terminated: dict[str, Any] | None = field(default=None)

    def terminated_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "exitCode": self.exit_code if self.exit_code is not None else 0,
            "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
        }
        if self.message:
            d["message"] = self.message
        return d

    def to_api(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": rfc3339(self.started_at)}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated_dict()}
        else:
            waiting: dict[str, Any] = {"reason": self.reason or "ContainerCreating"}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: dict[str, Any] = {
            "name": self.name,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "image": "",
            "imageID": "",
        }
        if self.pid is not None and self.state == "running":
            out["containerID"] = f"podium://{self.pid}"
        return out


def restore_counts(
    states: dict[str, ContainerState], init_states: dict[str, ContainerState], status: dict[str, Any]
) -> None:
    """Carry restart counts (and finished init containers) over from the status a previous node wrote."""
    for cs in status.get("containerStatuses") or []:
        if cs["name"] in states:
            states[cs["name"]].restart_count = int(cs.get("restartCount", 0))
    conditions = status.get("conditions") or []
    done = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions)
    for cs in status.get("initContainerStatuses") or []:
        s = init_states.get(cs["name"])
        if s is None:
            continue
        s.restart_count = int(cs.get("restartCount", 0))
        if done:  # the kubelet does not run init containers again once the pod was initialized
            s.state, s.reason, s.exit_code = "terminated", "Completed", 0
            s.final, s.ready, s.started = True, True, False


def init_failed(init_containers: Sequence[ContainerState]) -> bool:
    """An init container failed for good (restartPolicy Never): the pod never gets to its main containers."""
    return any(c.final and c.exit_code != 0 for c in init_containers)


def initialized(init_containers: Sequence[ContainerState]) -> bool:
    return all(c.final and c.exit_code == 0 for c in init_containers)


def pod_phase(containers: list[ContainerState], init_containers: Sequence[ContainerState] = ()) -> str:
    if init_failed(init_containers):
        return "Failed"
    if not containers or not initialized(init_containers):
        return "Pending"
    if all(c.final for c in containers):
        return "Succeeded" if all(c.exit_code == 0 for c in containers) else "Failed"
    if any(c.state == "running" or c.restart_count > 0 or c.state == "terminated" for c in containers):
        return "Running"
    return "Pending"


def _cond(kind: str, ok: bool, since: datetime, reason: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(since),
    }
    if reason and not ok:
        c["reason"] = reason
    return c


def pod_status(
    containers: list[ContainerState],
    pod_ip: str | None,
    start_time: datetime,
    host_ip: str = "127.0.0.1",
    init_containers: Sequence[ContainerState] = (),
) -> dict[str, Any]:
    """The full `status` block; conditions keep `start_time` as transition time (good enough for the node)."""
    phase = pod_phase(containers, init_containers)
    inited = initialized(init_containers)
    all_ready = bool(containers) and all(c.ready for c in containers)
    done = phase in ("Succeeded", "Failed")
    not_ready_reason = "PodCompleted" if done else "ContainersNotReady"
    status: dict[str, Any] = {
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": rfc3339(start_time),
        "conditions": [
            _cond("PodScheduled", True, start_time),
            _cond("Initialized", inited, start_time, "ContainersNotInitialized"),
            _cond("ContainersReady", all_ready and not done, start_time, not_ready_reason),
            _cond("Ready", all_ready and not done, start_time, not_ready_reason),
        ],
        "containerStatuses": [c.to_api() for c in containers],
        # No qosClass: the API server computes it at creation from the resources and refuses any change.
    }
    if init_containers:
        status["initContainerStatuses"] = [c.to_api() for c in init_containers]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
