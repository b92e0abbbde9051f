"""The operator's built-in backlog autoscaler with real agent pods: from zero to max on a burst of slow tasks,
down again only after the delay, and a scale-down that lands on busy replicas loses and repeats no task.

Each task's command counts its executions in Redis (as in test_operator_recovery) so a re-run shows up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from podium.dataplane.messages import Result
from podium_localcluster.redis_server import RedisServer
from tests.support.wait import wait_for

from .agent_support import dispatch, events, executions, pending_by_replica, pods_of, result
from .conftest import ClusterHandle
from .helpers import Operator, agent, apply, get, require_ready_node, status_of

pytestmark = pytest.mark.cluster

# Long enough that the first scale-down (10 s after the backlog fell to 3) finds all three replicas mid-task,
# short enough for PODIUM_GRACE_SECONDS (25) to let a terminating replica finish its task.
TASK_SECONDS = 20
DELAY = 10
PODS_TIMEOUT = 180.0  # three agent processes starting on a shared 2-core machine


def autoscaled_agent(name: str, server: RedisServer, ns: str) -> dict[str, Any]:
    counter = f"podium-test:exec:{ns}:{name}"
    script = (
        f'redis-cli -h {server.host} -p {server.port} HINCRBY {counter} "$PODIUM_TASK_ID" 1 >/dev/null; '
        f"sleep {TASK_SECONDS}; cat"
    )
    return agent(
        name,
        replicas=0,
        concurrency=1,
        backend={"command": {"args": ["sh", "-c", script]}},
        autoscaling={"minReplicas": 0, "maxReplicas": 3, "targetBacklogPerReplica": 2, "scaleDownDelaySeconds": DELAY},
    )


def live_pods(cluster: ClusterHandle, ns: str, name: str) -> set[str]:
    return {p["metadata"]["name"] for p in pods_of(cluster, ns, name) if not p["metadata"].get("deletionTimestamp")}


def spec_replicas(cluster: ClusterHandle, ns: str, name: str) -> int | None:
    replicas: int | None = ((get(cluster, ns, "agent", name) or {}).get("spec") or {}).get("replicas")
    return replicas


@dataclass
class Sample:
    """What the test saw just before the Agent's spec.replicas first fell below 3."""

    pods: set[str] = field(default_factory=set)
    busy: dict[str, int] = field(default_factory=dict)  # replica -> tasks in flight
    done: int = 0  # tasks with a result


def test_scales_from_zero_on_backlog_and_back_to_zero_after_the_delay(
    cluster: ClusterHandle, ns: str, operator: Operator, admin: redis.Redis, redis_server: RedisServer
) -> None:
    require_ready_node(cluster)
    name = "burst"
    apply(cluster, ns, autoscaled_agent(name, redis_server, ns))
    idle = wait_for(
        "the autoscaler's first reading",
        lambda: (s := status_of(cluster, ns, "agent", name)).get("autoscaling") and s,
    )
    assert idle["autoscaling"] == {"backlog": 0, "desiredReplicas": 0}
    assert spec_replicas(cluster, ns, name) == 0 and live_pods(cluster, ns, name) == set()

    started = time.time()
    tasks = dispatch(redis_server, ns, name, [f"job-{i}" for i in range(6)])
    # 6 tasks / 2 per replica = 3, at once: one health round (2 s here) plus the read.
    wait_for("spec.replicas 3", lambda: spec_replicas(cluster, ns, name) == 3, timeout=15)
    scale_up_seconds = time.time() - started
    wait_for("3 agent pods", lambda: len(live_pods(cluster, ns, name)) == 3, timeout=PODS_TIMEOUT)
    wait_for(
        "three replicas each running a task",
        lambda: sum(1 for n in pending_by_replica(admin, ns, name).values() if n) == 3,
        timeout=PODS_TIMEOUT,
    )

    # Watch for the first scale-down, remembering who was busy right before it.
    seen = Sample()

    def scaled_down() -> bool:
        # Sample first, then look at the count: a sample followed by a count of 3 was taken before the scale-down.
        now = Sample(
            live_pods(cluster, ns, name),
            pending_by_replica(admin, ns, name),
            sum(1 for t in tasks if result(admin, t) is not None),
        )
        replicas = spec_replicas(cluster, ns, name)
        if replicas is not None and replicas < 3:
            return True
        seen.pods, seen.busy, seen.done = now.pods, now.busy, now.done
        return False

    wait_for("the first scale-down", scaled_down, timeout=4 * TASK_SECONDS + PODS_TIMEOUT, every=0.3)
    scaled_down_at = time.time()
    assert len(seen.pods) == 3 and all(seen.busy.get(p) == 1 for p in seen.pods), seen
    assert seen.done < len(tasks), "the scale-down came after the work; it proves nothing about busy replicas"
    assert spec_replicas(cluster, ns, name) == 2  # one step down: a recommendation of 2 held for the delay

    results: dict[str, Result] = wait_for(
        "every task's result",
        lambda: len(r := {t.id: res for t in tasks if (res := result(admin, t)) is not None}) == len(tasks) and r,
        timeout=3 * TASK_SECONDS + 30,
    )
    assert all(r.ok for r in results.values()), results
    assert {t.id: executions(admin, ns, name, t.id) for t in tasks} == {t.id: 1 for t in tasks}
    # The replica the scale-down removed was mid-task: SIGTERM let it finish that task, which nobody re-ran.
    removed = seen.pods - live_pods(cluster, ns, name)
    assert len(removed) == 1, (seen.pods, live_pods(cluster, ns, name))
    finished_late = [r for r in results.values() if r.replica in removed and r.finished_at > scaled_down_at]
    assert len(finished_late) == 1, results

    wait_for("spec.replicas 0", lambda: spec_replicas(cluster, ns, name) == 0, timeout=DELAY + 30)
    last_done = max(r.finished_at for r in results.values())
    wait_for("no agent pods", lambda: not pods_of(cluster, ns, name), timeout=PODS_TIMEOUT)
    status = wait_for(
        "status at zero",
        lambda: (
            (s := status_of(cluster, ns, "agent", name)).get("replicas") == 0
            and (s.get("autoscaling") or {}).get("desiredReplicas") == 0
            and s
        ),
        timeout=30,
    )
    auto = status["autoscaling"]
    assert auto["backlog"] == 0
    last_scale = time.mktime(time.strptime(auto["lastScaleTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    # The idle recommendation of 0 had to hold for the delay (less a health round and the seconds truncated).
    assert last_scale >= last_done + DELAY - 3, (auto, last_done)
    dep = get(cluster, ns, "deployment", name) or {}
    assert dep["spec"]["replicas"] == 0

    story = [e for e in events(cluster, ns, name, started) if e["reason"] in ("ScaledUp", "ScaledDown")]
    said = [(e["reason"], e["message"], int(e.get("count") or 1)) for e in story]
    ups = [s for s in said if s[0] == "ScaledUp"]
    assert ups == [("ScaledUp", "backlog 6 (target 2/replica): replicas 0 -> 3", 1)], said
    downs = [s[1].split(": replicas ")[1] for s in said if s[0] == "ScaledDown"]
    assert downs[0] == "3 -> 2" and downs[-1].endswith("-> 0") and len(downs) <= 3, said
    print(f"scale-up 0 -> 3 {scale_up_seconds:.1f}s after dispatch; events: {said}")
    assert operator.alive()


def test_a_manual_scale_lasts_until_the_next_decision_and_the_operator_does_not_fight_itself(
    cluster: ClusterHandle, ns: str, operator: Operator
) -> None:
    name = "manual"
    apply(
        cluster,
        ns,
        agent(name, replicas=0, autoscaling={"minReplicas": 0, "maxReplicas": 2, "scaleDownDelaySeconds": 5}),
    )
    wait_for("the autoscaler's first reading", lambda: status_of(cluster, ns, "agent", name).get("autoscaling"))
    since = time.time()
    out = cluster.kubectl("scale", "-n", ns, f"agent/{name}", "--replicas=2")
    assert out.returncode == 0, out.stderr
    # An empty inbox recommends 0 and nothing in the window needed more: the next round takes it back down.
    wait_for("spec.replicas back to 0", lambda: spec_replicas(cluster, ns, name) == 0, timeout=15)
    # Three health rounds (2 s each) and a resync later it is still 0, after exactly one ScaledDown.
    time.sleep(10)
    assert spec_replicas(cluster, ns, name) == 0
    said = [
        (e["reason"], e["message"], int(e.get("count") or 1))
        for e in events(cluster, ns, name, since)
        if e["reason"] in ("ScaledUp", "ScaledDown")
    ]
    assert said == [("ScaledDown", "backlog 0 (target 10/replica): replicas 2 -> 0", 1)], said
    assert operator.alive()
