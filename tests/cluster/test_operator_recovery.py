"""Health-driven recovery with real agent pods on the local cluster: frozen and killed replicas, maintenance, and
each agent's own Redis credentials. (The circuit breaker is the engine's, fed by task attempts:
test_orchestration_outcomes.py shows it in Agent status.)

Agent pods run as local processes on the node, so a test finds a replica's process by its PODIUM_REPLICA
environment and freezes (SIGSTOP) or kills (SIGKILL) it like a wedged or crashed container. Each task's command
counts its executions in Redis (``redis-cli HINCRBY``) so a test can tell a reclaimed, re-run task from one that
simply finished.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import NoPermissionError

from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import Task
from podium_localcluster.redis_server import RedisServer
from tests.support.wait import wait_for

from .agent_support import dispatch, events, executions, pending_by_replica, pods_of, result
from .conftest import ClusterHandle
from .helpers import (
    Operator,
    agent,
    apply,
    apply_crds,
    condition,
    get,
    module_namespace,
    require_ready_node,
    running_operator,
    status_of,
)

pytestmark = pytest.mark.cluster

TASK_SECONDS = 8  # long enough that a replica is reliably mid-task when the test strikes


@pytest.fixture(scope="module")
def rns(cluster: ClusterHandle) -> Iterator[str]:
    require_ready_node(cluster)
    apply_crds(cluster)
    yield from module_namespace(cluster, "podium-rec")


@pytest.fixture(scope="module")
def op(
    cluster: ClusterHandle, rns: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    yield from running_operator(cluster, rns, redis_server, tmp_path_factory)


def slow_agent(name: str, server: RedisServer, ns: str, replicas: int, **spec: Any) -> dict[str, Any]:
    counter = f"podium-test:exec:{ns}:{name}"
    script = (
        f'redis-cli -h {server.host} -p {server.port} HINCRBY {counter} "$PODIUM_TASK_ID" 1 >/dev/null; '
        f"sleep {TASK_SECONDS}; cat"
    )
    return agent(name, replicas=replicas, concurrency=1, backend={"command": {"args": ["sh", "-c", script]}}, **spec)


def running_on_both_replicas(admin: redis.Redis, ns: str, name: str, tasks: list[Task]) -> dict[str, int]:
    """Wait until each replica holds one task and both tasks have started executing.

    Being pending is not enough: a replica can be killed between reading a task and starting
    it, and then the task runs only once, after the reclaim.
    """
    return wait_for(
        "each replica running one task",
        lambda: (
            len(p := {r: n for r, n in pending_by_replica(admin, ns, name).items() if n}) == 2
            and all(executions(admin, ns, name, t.id) == 1 for t in tasks)
            and p
        ),
    )


def leader_pid(ns: str, pod: str) -> int | None:
    """The container's leader (its process-group leader): the `podium agent` process of that pod."""
    want = {f"PODIUM_REPLICA={pod}".encode(), f"PODIUM_NAMESPACE={ns}".encode()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            env = set((entry / "environ").read_bytes().split(b"\0"))
            if want <= env and os.getpgid(pid) == pid and process_state(pid) != "Z":
                return pid
        except (OSError, ProcessLookupError):
            continue
    return None


def process_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def reasons(evts: list[dict[str, Any]]) -> list[str]:
    return [e["reason"] for e in evts]


class PhaseLog:
    """Every phase the Agent's status showed, sampled while a test waits (transient phases included)."""

    def __init__(self, cluster: ClusterHandle, ns: str, name: str) -> None:
        self.cluster, self.ns, self.name = cluster, ns, name
        self.seen: list[str] = []

    def sample(self) -> dict[str, Any]:
        status = status_of(self.cluster, self.ns, "agent", self.name)
        phase = status.get("phase")
        if phase and (not self.seen or self.seen[-1] != phase):
            self.seen.append(phase)
        return status


def wait_ready(cluster: ClusterHandle, ns: str, name: str, replicas: int, timeout: float = 120) -> dict[str, Any]:
    status: dict[str, Any] = wait_for(
        f"{name} Ready {replicas}/{replicas}",
        lambda: (
            (s := status_of(cluster, ns, "agent", name)).get("ready") == f"{replicas}/{replicas}"
            and s.get("phase") == "Ready"
            and s
        ),
        timeout=timeout,
    )
    return status


@contextlib.contextmanager
def no_stopped_leftovers(pids: list[int]) -> Iterator[None]:
    """Whatever happens, no frozen process group outlives the test (the node would wait out its grace period)."""
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def test_frozen_replica_is_restarted_and_its_task_completes_elsewhere(
    cluster: ClusterHandle, rns: str, op: Operator, admin: redis.Redis, redis_server: RedisServer
) -> None:
    apply(cluster, rns, slow_agent("frozen", redis_server, rns, replicas=2))
    wait_ready(cluster, rns, "frozen", 2)
    tasks = dispatch(redis_server, rns, "frozen", ["alpha", "beta"])
    holders = running_on_both_replicas(admin, rns, "frozen", tasks)
    victim = sorted(holders)[0]
    pid = wait_for(f"process of {victim}", lambda: leader_pid(rns, victim), timeout=10)
    frozen_at = time.time()
    phases = PhaseLog(cluster, rns, "frozen")
    with no_stopped_leftovers([pid]):
        os.killpg(pid, signal.SIGSTOP)
        # The pod still looks alive to Kubernetes (no liveness failure yet): only the heartbeat tells.
        story = wait_for(
            "HeartbeatLost and ReplicaRestarted for the frozen replica",
            lambda: (
                phases.sample()
                and {"HeartbeatLost", "ReplicaRestarted"}
                <= set(reasons(ev := events(cluster, rns, "frozen", frozen_at)))
                and ev
            ),
            timeout=40,
        )
        lost = next(e for e in story if e["reason"] == "HeartbeatLost")
        assert victim in lost["message"] and lost["type"] == "Warning"
        detected = time.time() - frozen_at
        names = wait_for(
            "the frozen pod replaced",
            lambda: (
                phases.sample()
                and victim
                not in (
                    n := {
                        p["metadata"]["name"]
                        for p in pods_of(cluster, rns, "frozen")
                        if not p["metadata"].get("deletionTimestamp")
                    }
                )
                and len(n) == 2
                and n
            ),
            timeout=60,
        )
        assert victim not in names
        done = wait_for(
            "both tasks finished",
            lambda: phases.sample() and all(res := [result(admin, t) for t in tasks]) and res,
            timeout=90,
        )
    assert [r.ok for r in done] == [True, True] and [r.output for r in done] == ["alpha", "beta"]
    assert victim not in {r.replica for r in done}, "the frozen replica cannot have finished anything"
    # The frozen replica had started one of them: it ran again on a survivor after the bus reclaimed it.
    assert sorted(executions(admin, rns, "frozen", t.id) for t in tasks) == [1, 2]
    wait_for("back to Ready 2/2", lambda: phases.sample().get("ready") == "2/2" and phases.seen[-1] == "Ready")
    assert "Degraded" in phases.seen and phases.seen[-1] == "Ready", phases.seen
    assert condition(status_of(cluster, rns, "agent", "frozen"), "Degraded")["status"] == "False"
    print(f"frozen replica detected after {detected:.1f}s; phases {phases.seen}")


def test_killed_replica_is_restarted_by_the_node_and_loses_no_task(
    cluster: ClusterHandle, rns: str, op: Operator, admin: redis.Redis, redis_server: RedisServer
) -> None:
    apply(cluster, rns, slow_agent("killed", redis_server, rns, replicas=2))
    wait_ready(cluster, rns, "killed", 2)
    tasks = dispatch(redis_server, rns, "killed", ["one", "two"])
    holders = running_on_both_replicas(admin, rns, "killed", tasks)
    victim = sorted(holders)[0]
    pid = wait_for(f"process of {victim}", lambda: leader_pid(rns, victim), timeout=10)
    killed_at = time.time()
    phases = PhaseLog(cluster, rns, "killed")
    os.kill(pid, signal.SIGKILL)
    wait_for(
        "a new process in the same pod",
        lambda: phases.sample() is not None and (p := leader_pid(rns, victim)) not in (None, pid) and p,
        timeout=30,
    )
    pod = next(p for p in pods_of(cluster, rns, "killed") if p["metadata"]["name"] == victim)
    assert not pod["metadata"].get("deletionTimestamp"), "a crash is the node's to restart, not a pod deletion"
    crashed = wait_for(
        "ReplicaCrashed",
        lambda: (
            phases.sample()
            and [e for e in events(cluster, rns, "killed", killed_at) if e["reason"] == "ReplicaCrashed"]
        ),
        timeout=30,
    )
    assert victim in crashed[0]["message"]
    done = wait_for(
        "both tasks finished",
        lambda: phases.sample() and all(res := [result(admin, t) for t in tasks]) and res,
        timeout=90,
    )
    assert [r.ok for r in done] == [True, True] and [r.output for r in done] == ["one", "two"]
    assert sorted(executions(admin, rns, "killed", t.id) for t in tasks) == [1, 2], "the killed task ran again"
    wait_for("back to Ready 2/2", lambda: phases.sample().get("ready") == "2/2" and phases.seen[-1] == "Ready")
    assert "Degraded" in phases.seen, phases.seen
    assert {"PhaseDegraded", "PhaseReady"} <= set(reasons(events(cluster, rns, "killed", killed_at)))
    pod = next(p for p in pods_of(cluster, rns, "killed") if p["metadata"]["name"] == victim)
    restarts = sum(int(c.get("restartCount", 0)) for c in pod["status"].get("containerStatuses") or [])
    assert restarts >= 1, "the node restarted the killed container in the same pod"
    print(f"killed replica restarted (restartCount {restarts}); phases {phases.seen}")


def test_maintenance_finishes_in_flight_work_and_takes_nothing_new(
    cluster: ClusterHandle, rns: str, op: Operator, admin: redis.Redis, redis_server: RedisServer
) -> None:
    apply(cluster, rns, slow_agent("resting", redis_server, rns, replicas=1))
    wait_ready(cluster, rns, "resting", 1)
    (first,) = dispatch(redis_server, rns, "resting", ["in-flight"])
    wait_for("the task in flight", lambda: executions(admin, rns, "resting", first.id) == 1)
    apply(cluster, rns, slow_agent("resting", redis_server, rns, replicas=1, maintenance=True))
    status = wait_for(
        "phase Maintenance",
        lambda: (s := status_of(cluster, rns, "agent", "resting")).get("phase") == "Maintenance" and s,
    )
    assert condition(status, "Ready")["reason"] == "Maintenance"
    # The replica learns it through its mounted config and stops passing /readyz.
    wait_for(
        "the replica drains", lambda: status_of(cluster, rns, "agent", "resting").get("ready") == "0/1", timeout=60
    )
    finished = wait_for("the in-flight task finishes", lambda: result(admin, first), timeout=30)
    assert finished.ok and finished.output == "in-flight"
    (later,) = dispatch(redis_server, rns, "resting", ["later"])
    time.sleep(6)
    assert result(admin, later) is None and executions(admin, rns, "resting", later.id) == 0
    assert admin.xlen(AgentKeys(rns, "resting").inbox) >= 1
    apply(cluster, rns, slow_agent("resting", redis_server, rns, replicas=1, maintenance=False))
    done = wait_for("the waiting task runs after maintenance", lambda: result(admin, later), timeout=60)
    assert done.ok and done.output == "later"
    wait_ready(cluster, rns, "resting", 1, timeout=60)


def test_replicas_use_their_own_redis_user_which_cannot_reach_other_agents(
    cluster: ClusterHandle, rns: str, op: Operator, admin: redis.Redis, redis_server: RedisServer
) -> None:
    apply(cluster, rns, slow_agent("keyed", redis_server, rns, replicas=1))
    apply(cluster, rns, agent("neighbour", replicas=0))
    wait_ready(cluster, rns, "keyed", 1)
    secret = wait_for("the credentials Secret", lambda: get(cluster, rns, "secret", "keyed-redis"))
    creds = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    # The rules are accepted by this Redis as they are: nothing was dropped to make SETUSER pass.
    user = admin.execute_command("ACL", "GETUSER", creds["username"])
    assert "+client|setname" in user["commands"] and "+eval" not in str(user)
    selectors = " ".join(str(s) for s in user["selectors"])
    assert "+fcall|podium_complete" in selectors and "+hgetall" in selectors
    # The running replica logged in as that user (its heartbeat is its work reaching Redis).
    clients = admin.client_list()
    assert any(c["user"] == creds["username"] for c in clients), [c["user"] for c in clients]
    (task,) = dispatch(redis_server, rns, "keyed", ["own keys"])
    done = wait_for("a task through the agent's own user", lambda: result(admin, task), timeout=60)
    assert done.ok and done.output == "own keys"
    r = redis.Redis(
        host=redis_server.host, port=redis_server.port, username=creds["username"], password=creds["password"]
    )
    try:
        mine = AgentKeys(rns, "keyed")
        assert r.get(mine.result(task.id)) is not None and r.hgetall(mine.heartbeats)
        theirs = AgentKeys(rns, "neighbour")
        with pytest.raises(NoPermissionError):
            r.xlen(theirs.inbox)
        with pytest.raises(NoPermissionError):
            r.hset(theirs.heartbeats, "intruder", "0 0 0 0")
    finally:
        r.close()
