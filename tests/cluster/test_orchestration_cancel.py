"""Deleting an Orchestration while its tasks wait in agents' inboxes: they never run, and the agents carry on.

The pipeline test in test_orchestrations.py has one task in flight at a time, so nothing is ever queued when it is
deleted. Here an eventDriven run sends twelve independent slow tasks to two agents that take one task at a time,
so most of them sit in the inboxes when `kubectl delete` lands. Executions are counted by the agents themselves
(tests/cluster/test_orchestrations_agents.py), per task id, and task ids start with the run's uid.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from podium.dataplane.keys import GROUP, AgentKeys, OrchestrationKeys
from podium_localcluster.redis_server import RedisServer
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import Operator, require_ready_node
from .orchestration_support import agent, executions, finished, kubectl_apply, obj, orchestration, status

AGENTS = ("worker-a", "worker-b")
SLOW_SECONDS = 3.0  # long enough that twelve tasks on two agents take ~18 s: deletion lands mid-run
TASKS = 12
NAME = "queued"


def agents_ready(cluster: ClusterHandle, ns: str) -> bool:
    out = cluster.kubectl("get", "-n", ns, "agents", "-o", "json")
    items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    return len(items) == len(AGENTS) and all((i.get("status") or {}).get("ready") == "1/1" for i in items)


@pytest.fixture(scope="module")
def workers(cluster: ClusterHandle, ns: str, operator: Operator, redis_server: RedisServer) -> tuple[str, ...]:
    """Two slow agents that each run one task at a time, so the rest of their share waits in the inbox."""
    require_ready_node(cluster)
    manifests = []
    for name in AGENTS:
        manifest = agent(name, "worker", "analyzer", redis_server.url, slow=SLOW_SECONDS)
        manifest["spec"]["concurrency"] = 1
        manifests.append(manifest)
    kubectl_apply(cluster, ns, *manifests)
    wait_for("both agents Ready 1/1", lambda: agents_ready(cluster, ns), timeout=240, every=1.0)
    return AGENTS


def independent_tasks(name: str, count: int) -> dict[str, Any]:
    """An eventDriven run of `count` tasks with no dependencies, dealt round-robin to the workers."""
    tasks = [{"name": f"t{i}", "agents": [AGENTS[i % len(AGENTS)]]} for i in range(count)]
    return orchestration(
        name,
        strategy="eventDriven",
        agentSelector={"matchLabels": {"team": "slow"}},
        input={"text": "queued work"},
        eventDriven={"tasks": tasks},
        limits={"timeoutSeconds": 300, "maxTasks": 50},
    )


def ran_for(admin: redis.Redis, ns: str, name: str, uid: str) -> dict[str, int]:
    """Executions of one run (task ids are `<uid>:<step>:<attempt>`), counted by the agents."""
    return {k: v for k, v in executions(admin, ns, name).items() if k.startswith(f"{uid}:")}


def inbox_state(admin: redis.Redis, ns: str, name: str, uid: str) -> dict[str, dict[str, int]]:
    """Per agent: entries in the inbox of this run, all entries, and entries delivered but not acknowledged."""
    state: dict[str, dict[str, int]] = {}
    for worker in AGENTS:
        inbox = AgentKeys(ns, worker).inbox
        mine = 0
        for _id, fields in admin.xrange(inbox) or []:
            task = json.loads((fields or {})["t"])
            mine += int(task.get("orchestration") == f"{ns}/{name}" and (task.get("meta") or {}).get("uid") == uid)
        pending = admin.xpending(inbox, GROUP)["pending"]
        state[worker] = {"run": mine, "len": admin.xlen(inbox), "pending": pending}
    return state


def drained(state: dict[str, dict[str, int]]) -> bool:
    return all(s == {"run": 0, "len": 0, "pending": 0} for s in state.values())


def test_delete_while_tasks_are_queued_runs_none_of_them_and_the_agents_take_a_new_run(
    cluster: ClusterHandle, ns: str, workers: tuple[str, ...], admin: redis.Redis
) -> None:
    kubectl_apply(cluster, ns, independent_tasks(NAME, TASKS))
    uid = wait_for("the run's uid", lambda: obj(cluster, ns, NAME).get("metadata", {}).get("uid"), timeout=30)
    # Both agents busy and most of the run still waiting: the situation this test is about.
    queued = wait_for(
        "both agents running a task with the rest queued",
        lambda: (
            len(ran_for(admin, ns, NAME, uid)) >= len(AGENTS)
            and sum((s := inbox_state(admin, ns, NAME, uid))[w]["run"] for w in AGENTS) >= 6
            and s
        ),
        timeout=90,
    )
    before = len(ran_for(admin, ns, NAME, uid))

    started = time.monotonic()
    deleted = cluster.kubectl("delete", "-n", ns, "orchestration", NAME, "--timeout=60s")
    took = time.monotonic() - started
    assert deleted.returncode == 0, deleted.stderr
    assert took < 10, f"kubectl delete took {took:.1f}s"
    print(f"\nqueued at delete: {queued}; delete took {took:.1f}s; executions before: {before}")

    # The tasks in flight finish on their agents; everything else goes without being run or left behind.
    state = wait_for(
        "the inboxes emptied of the run",
        lambda: drained(s := inbox_state(admin, ns, NAME, uid)) and s,
        timeout=60,
    )
    assert drained(state), state
    ran = ran_for(admin, ns, NAME, uid)
    # At most one more start per agent raced the delete (concurrency 1): the queued rest never ran.
    assert len(ran) <= before + len(AGENTS) and len(ran) < TASKS, ran
    assert set(ran.values()) == {1}, ran
    assert admin.keys(OrchestrationKeys(ns, NAME).pattern) == []
    assert agents_ready(cluster, ns)

    # Same name, new uid: the first run's cancel mark must not touch it.
    kubectl_apply(cluster, ns, independent_tasks(NAME, 4))
    uid2 = wait_for("the new run's uid", lambda: obj(cluster, ns, NAME).get("metadata", {}).get("uid"), timeout=30)
    assert uid2 != uid
    st = finished(cluster, ns, NAME, timeout=180)
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["tasksDone"] == 4 and {t["agent"] for t in st["tasks"]} == set(AGENTS)
    again = ran_for(admin, ns, NAME, uid2)
    assert len(again) == 4 and set(again.values()) == {1}, again
    # Seconds later (the whole second run), still nothing of the first run has run or reappeared.
    assert ran_for(admin, ns, NAME, uid) == ran
    assert drained(inbox_state(admin, ns, NAME, uid)) and drained(inbox_state(admin, ns, NAME, uid2))
    assert agents_ready(cluster, ns) and status(cluster, ns, NAME)["phase"] == "Succeeded"
