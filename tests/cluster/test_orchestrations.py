"""Orchestrations on the local cluster: `podium operator` as a process, agents as real pods, kubectl apply.

One module-scoped operator and one set of counting demo agents (tests/cluster/test_orchestrations_agents.py)
serve every test; each test uses its own Orchestration names. Every agent execution is counted per task id in
Redis, so "no task ran twice" is checked from the agents' side, not from the operator's.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from podium.api.common import FINALIZER
from podium.dataplane.keys import OrchestrationKeys
from podium_localcluster.redis_server import RedisServer, free_port
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import PODIUM, Operator, condition, require_ready_node, status_of
from .orchestration_support import (
    HERE,
    agent,
    executions,
    finished,
    kubectl_apply,
    obj,
    orchestration,
    patch_spec,
    status,
)

DEMO = ("planner", "researcher", "analyzer", "synthesizer", "documenter")


def events(cluster: ClusterHandle, ns: str, name: str) -> list[str]:
    out = cluster.kubectl("get", "events", "-n", ns, f"--field-selector=involvedObject.name={name}", "-o", "json")
    return [e["reason"] for e in json.loads(out.stdout)["items"]] if out.returncode == 0 else []


@pytest.fixture(scope="module")
def fleet(cluster: ClusterHandle, ns: str, operator: Operator, redis_server: RedisServer) -> list[str]:
    """The demo agents (team research) and one slow worker (team slow), all Ready."""
    require_ready_node(cluster)
    manifests = [agent(name, name, name, redis_server.url) for name in DEMO]
    manifests.append(agent("slow", "worker", "analyzer", redis_server.url, slow=1.5))
    teams = [
        {
            "apiVersion": "podium.dev/v1alpha1",
            "kind": "Team",
            "metadata": {"name": "research"},
            "spec": {"lead": "planner", "members": [{"selector": {"matchLabels": {"team": "research"}}}]},
        },
        {
            "apiVersion": "podium.dev/v1alpha1",
            "kind": "Team",
            "metadata": {"name": "slow"},
            "spec": {"members": [{"agent": "slow"}]},
        },
    ]
    kubectl_apply(cluster, ns, *manifests, *teams)
    names = [m["metadata"]["name"] for m in manifests]

    def all_ready() -> bool:
        out = cluster.kubectl("get", "-n", ns, "agents", "-o", "json")
        items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
        return len(items) == len(names) and all((i.get("status") or {}).get("ready") == "1/1" for i in items)

    wait_for("every agent Ready 1/1", all_ready, timeout=240, every=1.0)
    return names


SPECS: dict[str, dict[str, Any]] = {
    "pipeline": {
        "team": "research",
        "input": {"topic": "redis streams for agent messaging"},
        "pipeline": {
            "stages": [
                {"name": "gather", "role": "researcher"},
                {"name": "analyse", "role": "analyzer", "validate": {"jsonSchema": {"type": "object"}}},
                {"name": "summarise", "role": "documenter", "fallback": "synthesizer"},
            ]
        },
    },
    "hierarchical": {
        "team": "research",
        "input": {"goal": "Compare Redis Streams and Kafka for agent messaging"},
        "hierarchical": {"coordinator": "planner", "teams": ["research"]},
    },
    "swarm": {
        "agentSelector": {"matchLabels": {"team": "research"}},
        "input": {"problem": "a short name for an agent operator"},
        "swarm": {"explorerRole": "researcher", "evaluatorRole": "analyzer", "maxGenerations": 2, "topK": 2},
    },
    "eventDriven": {
        "team": "research",
        "input": {"topic": "what changed in this release"},
        "eventDriven": {
            "tasks": [
                {"name": "gather", "role": "researcher"},
                {"name": "analyse", "role": "analyzer", "dependsOn": ["gather"]},
                {"name": "write", "agents": ["synthesizer"], "dependsOn": ["analyse"]},
            ]
        },
    },
    "centralCommand": {
        "team": "research",
        "input": {"goal": "triage three bug reports"},
        "centralCommand": {"planner": "planner"},
    },
    "peerToPeer": {
        "agentSelector": {"matchLabels": {"team": "research"}},
        "input": {"draft": "Podium runs agents"},
        "peerToPeer": {"maxRounds": 2, "applyTop": 1, "minScore": 0.3},
    },
    "market": {
        "agentSelector": {"matchLabels": {"team": "research"}},
        "input": {"text": "Podium is a Kubernetes operator that runs teams of AI agents."},
        "market": {
            "tasks": [
                {"name": "summary", "capabilities": ["writing"]},
                {"name": "facts", "capabilities": ["research"]},
            ],
            "reservePrice": 0.003,
        },
    },
}


@pytest.mark.parametrize("strategy", list(SPECS))
def test_each_strategy_applied_with_kubectl_runs_to_succeeded(
    cluster: ClusterHandle, ns: str, fleet: list[str], admin: redis.Redis, strategy: str
) -> None:
    name = f"run-{strategy.lower()}"
    spec = {"strategy": strategy, **SPECS[strategy], "limits": {"timeoutSeconds": 120, "maxTasks": 60}}
    kubectl_apply(cluster, ns, orchestration(name, **spec))
    st = finished(cluster, ns, name)
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["result"] not in (None, {}, []) and "resultRef" not in st
    done, total = (int(x) for x in st["progress"].split("/"))
    assert done == st["tasksDone"] >= 1 and total == st["tasksTotal"] >= done
    assert st["startedAt"] <= st["completedAt"] and st["cost"] > 0
    complete = next(c for c in st["conditions"] if c["type"] == "Complete")
    assert (
        complete["status"] == "True"
        and complete["observedGeneration"] == obj(cluster, ns, name)["metadata"]["generation"]
    )
    ran = executions(admin, ns, name)
    assert ran and set(ran.values()) == {1}, ran  # every task id executed exactly once
    worked = {t["agent"] for t in st["tasks"] if t["state"] == "Succeeded"}
    assert worked <= set(fleet)
    wait_for("Started and Succeeded events", lambda: {"Started", "Succeeded"} <= set(events(cluster, ns, name)))
    # The engine's per-agent performance reaches the Agents' status in the operator's next health round.
    agent_name = sorted(worked)[0]
    stats = wait_for(
        f"performance stats in Agent {agent_name}'s status",
        lambda: (
            (s := status_of(cluster, ns, "agent", agent_name).get("stats") or {}).get("tasksCompleted", 0) >= 1 and s
        ),
        timeout=60,
    )
    assert 0 < stats["successRate"] <= 1 and stats["averageLatencySeconds"] >= 0 and stats["recommendation"], stats


def test_runs_that_ended_leave_no_result_reader_on_the_operators_connections(admin: redis.Redis) -> None:
    # The runs above are over. Each used to leave its result reader blocked in XREAD on a connection of the
    # operator's pool for ever: a long-lived operator (64 connections) starved after 64 runs. The replica's runs
    # share one reader now. (The fleet's agents read their inboxes with XREADGROUP, not XREAD.)
    readers = [c for c in admin.client_list() if c.get("cmd") == "xread" and "b" in c.get("flags", "")]
    assert len(readers) <= 1, readers


def slow_pipeline(name: str, stages: int) -> dict[str, Any]:
    return orchestration(
        name,
        strategy="pipeline",
        team="slow",
        input={"text": "slow work"},
        pipeline={"stages": [{"name": f"s{i}", "agent": "slow", "retries": 0} for i in range(stages)]},
        limits={"timeoutSeconds": 300, "maxTasks": 50},
    )


def slow_run(cluster: ClusterHandle, ns: str, name: str, stages: int, *, done: int = 1) -> None:
    """A slow pipeline of ``stages`` applied, returning once ``done`` of them are done: the run is under way."""
    kubectl_apply(cluster, ns, slow_pipeline(name, stages))
    wait_for(f"{done} stage(s) done", lambda: status(cluster, ns, name).get("tasksDone", 0) >= done, timeout=60)


def test_missing_team_leaves_the_run_pending_with_a_reason(cluster: ClusterHandle, ns: str, fleet: list[str]) -> None:
    kubectl_apply(cluster, ns, orchestration("no-team", strategy="swarm", team="ghosts"))
    st = wait_for("Pending", lambda: (s := status(cluster, ns, "no-team")).get("phase") == "Pending" and s)
    running = next(c for c in st["conditions"] if c["type"] == "Running")
    assert running["reason"] == "TeamNotFound" and "ghosts" in running["message"]
    assert "startedAt" not in st
    assert cluster.kubectl("delete", "-n", ns, "orchestration", "no-team", "--timeout=30s").returncode == 0


def test_a_run_naming_an_agent_not_yet_created_waits_for_it_and_then_runs(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer, admin: redis.Redis
) -> None:
    # Applied before its Agent (another file, another `kubectl apply`): Pending, saying which Agent, not Failed.
    name = "late-agent"
    stages = [{"name": "first", "role": "researcher"}, {"name": "then", "agent": "late", "retries": 0}]
    kubectl_apply(cluster, ns, orchestration(name, strategy="pipeline", input={"x": 1}, pipeline={"stages": stages}))
    st = wait_for("Pending", lambda: (s := status(cluster, ns, name)).get("phase") == "Pending" and s)
    running = next(c for c in st["conditions"] if c["type"] == "Running")
    assert running["reason"] == "AgentNotFound" and "late (stage 'then')" in running["message"], running
    wide = cluster.kubectl("get", "-n", ns, "orchestration", name, "-o", "wide")  # its Message column says why
    assert "MESSAGE" in wide.stdout and "late (stage 'then')" in wide.stdout, wide.stdout
    time.sleep(3)  # a few of the run's looks: it stays Pending and dispatches nothing
    assert status(cluster, ns, name)["phase"] == "Pending" and not executions(admin, ns, name)
    # Or the name was misspelt: fixed in the Orchestration while it waits, the fixed spec is the one that runs.
    typo = orchestration(
        "typo", strategy="pipeline", input={"x": 1}, pipeline={"stages": [{"name": "s", "agent": "slwo"}]}
    )
    kubectl_apply(cluster, ns, typo)
    wait_for("Pending on slwo", lambda: "slwo" in status(cluster, ns, "typo").get("message", ""))
    typo["spec"]["pipeline"]["stages"][0]["agent"] = "slow"
    kubectl_apply(cluster, ns, typo, agent("late", "worker", "analyzer", redis_server.url))
    try:
        st = finished(cluster, ns, name)
        assert st["phase"] == "Succeeded", st.get("message")
        assert [t["agent"] for t in st["tasks"]][-1] == "late"
        fixed = finished(cluster, ns, "typo")
        assert fixed["phase"] == "Succeeded" and [t["agent"] for t in fixed["tasks"]] == ["slow"], fixed
        assert not condition(fixed, "SpecIgnored")  # an edit before the start is the run's own
    finally:
        cluster.kubectl("delete", "-n", ns, "orchestration", name, "typo", "--timeout=30s")
        cluster.kubectl("delete", "-n", ns, "agent", "late", "--timeout=60s")


def test_suspend_pauses_dispatch_and_resume_finishes(
    cluster: ClusterHandle, ns: str, fleet: list[str], admin: redis.Redis
) -> None:
    name = "pausable"
    slow_run(cluster, ns, name, 5)
    patch_spec(cluster, ns, name, {"suspend": True})
    wait_for("phase Suspended", lambda: status(cluster, ns, name).get("phase") == "Suspended", timeout=30)
    time.sleep(2.0)  # the stage in flight when suspend landed finishes
    held = len(executions(admin, ns, name))
    time.sleep(4.0)  # nearly three stage-lengths: a running pipeline would have moved on
    assert len(executions(admin, ns, name)) == held
    assert status(cluster, ns, name)["phase"] == "Suspended"
    patch_spec(cluster, ns, name, {"suspend": False})
    st = finished(cluster, ns, name)
    assert st["phase"] == "Succeeded" and st["tasksDone"] == 5
    assert set(executions(admin, ns, name).values()) == {1}
    wait_for("Suspended and Resumed events", lambda: {"Suspended", "Resumed"} <= set(events(cluster, ns, name)))


def test_a_limits_edit_applies_to_the_running_run_and_is_not_ignored(
    cluster: ClusterHandle, ns: str, fleet: list[str], admin: redis.Redis
) -> None:
    name = "tightened"
    slow_run(cluster, ns, name, 8)
    patch_spec(cluster, ns, name, {"limits": {"maxTasks": 3}})
    st = finished(cluster, ns, name)
    assert st["phase"] == "Failed" and st["message"] == "budget exceeded: maxTasks used 3 of 3", st.get("message")
    assert condition(st, "BudgetExceeded").get("status") == "True"
    assert not condition(st, "SpecIgnored") and st["observedGeneration"] == 2, st["conditions"]
    assert len(executions(admin, ns, name)) == 3
    wait_for("LimitsChanged event", lambda: "LimitsChanged" in events(cluster, ns, name))


def test_delete_cancels_the_run_and_purges_its_keys(
    cluster: ClusterHandle, ns: str, fleet: list[str], admin: redis.Redis
) -> None:
    name = "doomed"
    slow_run(cluster, ns, name, 10)
    started = time.monotonic()
    deleted = cluster.kubectl("delete", "-n", ns, "orchestration", name, "--timeout=30s")
    assert deleted.returncode == 0, deleted.stderr
    assert time.monotonic() - started < 20
    time.sleep(3.0)  # a stage in flight at deletion may still finish on its agent
    ran = len(executions(admin, ns, name))
    time.sleep(3.0)
    assert len(executions(admin, ns, name)) == ran < 10
    assert admin.keys(OrchestrationKeys(ns, name).pattern) == []


def test_operator_killed_mid_run_finishes_with_no_task_run_twice(
    cluster: ClusterHandle, ns: str, fleet: list[str], operator: Operator, admin: redis.Redis
) -> None:
    name = "survivor"
    slow_run(cluster, ns, name, 6, done=2)
    # An edit while it runs is not the run's, nor after the operator that replaces this one takes it up.
    eight = slow_pipeline(name, 8)["spec"]["pipeline"]
    patch_spec(cluster, ns, name, {"pipeline": eight})
    ignored = wait_for("SpecIgnored", lambda: condition(status(cluster, ns, name), "SpecIgnored"), timeout=30)
    assert ignored["reason"] == "RunStarted" and "generation 2" in ignored["message"], ignored
    operator.kill()
    before = status(cluster, ns, name)
    assert before["phase"] == "Running"
    time.sleep(2.0)  # the run's in-flight stage keeps going on its agent with no operator
    operator.start()
    st = finished(cluster, ns, name, timeout=120)
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["tasksDone"] == 6 and st["startedAt"] == before["startedAt"]
    assert condition(st, "SpecIgnored").get("observedGeneration") == 2, st["conditions"]
    ran = executions(admin, ns, name)
    assert len(ran) == 6 and set(ran.values()) == {1}, ran
    wait_for("Continued and SpecIgnored events", lambda: {"Continued", "SpecIgnored"} <= set(events(cluster, ns, name)))


def test_a_run_deleted_while_no_operator_runs_is_cleaned_up_once_one_starts(
    cluster: ClusterHandle, ns: str, fleet: list[str], operator: Operator, admin: redis.Redis
) -> None:
    name = "orphaned"
    slow_run(cluster, ns, name, 10)
    assert FINALIZER in obj(cluster, ns, name)["metadata"].get("finalizers", [])
    operator.kill()
    deleted = cluster.kubectl("delete", "-n", ns, "orchestration", name, "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    time.sleep(2.0)
    held = obj(cluster, ns, name)  # the finalizer holds it: nobody has cleaned up yet
    assert held["metadata"].get("deletionTimestamp") and admin.keys(OrchestrationKeys(ns, name).pattern)
    operator.start()
    wait_for("the run's object gone", lambda: obj(cluster, ns, name) == {}, timeout=60)
    assert admin.keys(OrchestrationKeys(ns, name).pattern) == []
    time.sleep(3.0)  # a stage in flight at the kill may still finish on its agent; nothing is sent after it
    ran = len(executions(admin, ns, name))
    time.sleep(3.0)
    assert len(executions(admin, ns, name)) == ran < 10


def test_podium_run_cli_submits_watches_and_shows_result_and_history(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer, tmp_path: Path
) -> None:
    manifest = orchestration(
        "via-cli",
        strategy="pipeline",
        team="research",
        input={"topic": "operators"},
        pipeline={"stages": [{"name": "gather", "role": "researcher"}, {"name": "write", "role": "documenter"}]},
    )
    # The file also holds an Agent (as the examples do): checked, not applied, and said so.
    extra = {"apiVersion": "podium.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "not-applied"}}
    extra["spec"] = {"role": "worker", "backend": {"command": {"args": ["cat"]}}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump_all([extra, manifest]))
    env = {**cluster.env, "KUBECONFIG": str(cluster.kubeconfig), "PODIUM_REDIS_URL": redis_server.url}

    def podium(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PODIUM, "run", "-n", ns, *args], env=env, capture_output=True, text=True, timeout=150, check=False
        )

    submitted = podium("submit", str(path), "--watch", "--timeout=120")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "via-cli" in submitted.stdout and "Succeeded" in submitted.stdout
    skipped = f"not applied: Agent not-applied (submit takes Orchestrations; apply the rest with kubectl apply -n {ns}"
    assert skipped in submitted.stderr, submitted.stderr
    assert cluster.kubectl("get", "-n", ns, "agent", "not-applied").returncode != 0
    shown = podium("result", "via-cli")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == status(cluster, ns, "via-cli")["result"]
    told = podium("history", "via-cli")
    assert told.returncode == 0, told.stderr
    lines = told.stdout.splitlines()
    assert "run.started" in lines[0] and "run.finished" in lines[-1]
    assert any("researcher execute stage-gather [ok, attempt 1]" in line for line in lines), lines
    assert any("documenter execute stage-write [ok" in line for line in lines), lines
    for verb in ("watch", "result", "history"):
        missing = podium(verb, "no-such-run")
        assert missing.returncode == 1 and missing.stdout == "", (verb, missing.stdout)
        assert missing.stderr.splitlines() == [
            f"podium run: orchestration 'no-such-run' not found in namespace {ns!r}"
        ], (verb, missing.stderr)
    # The namespace and Redis also after the command, as with kubectl; a Redis not there is one line, no traceback.
    nowhere = f"redis://:pw@127.0.0.1:{free_port()}/0"
    run = [PODIUM, "run", "history", "via-cli", "-n", ns, "--redis-url", nowhere]
    unreachable = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert unreachable.returncode == 1 and len(unreachable.stderr.splitlines()) == 1, unreachable.stderr
    assert unreachable.stderr.startswith(f"podium run: Redis at {nowhere.replace(':pw@', '')} cannot be reached")


def test_apply_to_first_dispatch_next_to_the_engine_called_directly(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer
) -> None:
    """bench/orchestration.py's operator figures, on the test fleet (printed with -s; bounded here)."""
    import asyncio
    import sys

    sys.path.insert(0, str(HERE.parents[1]))
    from bench import orchestration as bench
    from podium.operator.orchestrations import directory as od

    via_operator = bench.apply_to_first_dispatch(cluster.kubectl, redis_server.url, ns, "researcher", runs=3)
    agents = json.loads(cluster.kubectl("get", "-n", ns, "agents", "-o", "json").stdout)["items"]
    directory = od.build(od.Snapshot(agents, []))
    direct = asyncio.run(bench.direct_first_dispatch(redis_server.url, ns, directory, "researcher", runs=3))
    print("\n" + bench.summary("operator (kubectl apply)", via_operator))
    print(bench.summary("engine called directly", direct))
    assert all(r["first_dispatch"] < 10.0 for r in via_operator), via_operator
    assert all(r["first_dispatch"] < 1.0 for r in direct), direct


def test_a_finished_run_is_not_rerun_when_its_spec_changes(
    cluster: ClusterHandle, ns: str, fleet: list[str], admin: redis.Redis
) -> None:
    name = "immutable"
    kubectl_apply(cluster, ns, slow_pipeline(name, 1))
    assert finished(cluster, ns, name)["phase"] == "Succeeded"
    ran = executions(admin, ns, name)
    patch_spec(cluster, ns, name, {"input": "again"})

    cond = wait_for("SpecIgnored condition", lambda: condition(status(cluster, ns, name), "SpecIgnored"), timeout=30)
    assert cond["reason"] == "RunFinished" and cond["observedGeneration"] == 2
    time.sleep(2.0)
    assert status(cluster, ns, name)["phase"] == "Succeeded" and executions(admin, ns, name) == ran
