"""Honest outcomes on the local cluster: runs that cannot succeed say so, naming why, and never wait blind.

Everything is applied with kubectl and read back from status, as a user would: a stage that never produces valid
output, critical and optional agents at zero replicas, an autoscaled agent woken by its work, an unready agent a run
does not need, the market's choice at equal prices, a team that maps its own roles, and the engine's circuit
breaker as Agent status shows it. The agents are the counting demo agents of test_orchestrations_agents.py.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from datetime import datetime
from typing import Any

import pytest
import redis

from podium.dataplane.keys import AgentKeys
from podium_localcluster.redis_server import RedisServer
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import PODIUM, Operator, condition, require_ready_node, status_of
from .orchestration_support import agent, executions, finished, kubectl_apply, obj, orchestration

pytestmark = pytest.mark.cluster

TEAM = "honest"


def worker(name: str, role: str, fn: str, redis_url: str, **spec: Any) -> dict[str, Any]:
    """A counting demo agent (label team=honest) with ``spec`` merged over its spec."""
    manifest = agent(name, role, fn, redis_url, slow=float(spec.pop("slow", 0.0)))
    manifest["metadata"]["labels"]["team"] = spec.pop("team", TEAM)
    manifest["spec"] |= spec
    return manifest


def unavailable_for(cluster: ClusterHandle, ns: str, agent: str, reason: str, timeout: float) -> dict[str, Any]:
    """The Agent's status once its Available condition is False with ``reason``."""
    found: dict[str, Any] = wait_for(
        f"{agent}: Available=False {reason}",
        lambda: (
            (s := status_of(cluster, ns, "agent", agent)) and condition(s, "Available").get("reason") == reason and s
        ),
        timeout=timeout,
    )
    return found


def seconds(start: str, end: str) -> float:
    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    return at(end) - at(start)


def events(cluster: ClusterHandle, ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "events", "-n", ns, f"--field-selector=involvedObject.name={name}", "-o", "json")
    items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    return [e for e in items if e["involvedObject"]["kind"] == kind]


def metric(operator: Operator, name: str, **labels: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            found = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if found == wanted:
                return float(value)
    return None


@pytest.fixture(scope="module")
def fleet(cluster: ClusterHandle, ns: str, operator: Operator, redis_server: RedisServer) -> list[str]:
    """Six ready agents; the ones at zero or never ready are each test's own."""
    require_ready_node(cluster)
    url = redis_server.url
    manifests = [
        worker("planner", "planner", "planner", url),
        worker("coder", "coder", "researcher", url),
        worker("tester", "tester", "analyzer", url),
        worker("reviewer", "reviewer", "synthesizer", url),
        # Equal price and skills; only their speed differs (the runtime bids its recent mean duration).
        worker("quick", "bidder", "documenter", url, team="market", pricing={"perTask": 0.002}),
        worker("sluggish", "bidder", "documenter", url, team="market", slow=2.0, pricing={"perTask": 0.002}),
    ]
    kubectl_apply(cluster, ns, *manifests)
    names = [m["metadata"]["name"] for m in manifests]

    def all_ready() -> bool:
        return all(status_of(cluster, ns, "agent", n).get("ready") == "1/1" for n in names)

    wait_for("every agent Ready 1/1", all_ready, timeout=240, every=1.0)
    return names


def test_a_stage_that_never_produces_valid_output_fails_the_run_naming_the_stage(
    cluster: ClusterHandle, ns: str, fleet: list[str]
) -> None:
    stages = [
        {"name": "draft", "agent": "coder"},
        {"name": "verdict", "agent": "tester", "retries": 1, "validate": {"jsonSchema": {"required": ["verdict"]}}},
    ]
    kubectl_apply(
        cluster,
        ns,
        orchestration("invalid-stage", strategy="pipeline", input={"topic": "x"}, pipeline={"stages": stages}),
    )
    st = finished(cluster, ns, "invalid-stage")
    assert st["phase"] == "Failed" and not st["degraded"], st
    failed = condition(st, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "TaskFailed"
    assert failed["message"].startswith("stage 'verdict' failed: tester: ")
    assert failed["message"].endswith("missing field 'verdict' (2 times)"), failed["message"]
    verdict = next(t for t in st["tasks"] if t["name"] == "stage-verdict")
    assert verdict["state"] == "Failed" and verdict["attempts"] == 2
    # The same stage with onFailure: skip is skipped, its input passed on, and the run says it degraded.
    stages[1]["onFailure"] = "skip"
    kubectl_apply(
        cluster,
        ns,
        orchestration("skipped-stage", strategy="pipeline", input={"topic": "x"}, pipeline={"stages": stages}),
    )
    st = finished(cluster, ns, "skipped-stage")
    assert st["phase"] == "Succeeded" and st["degraded"], st
    assert condition(st, "Degraded")["message"].startswith("stage 'verdict' skipped (onFailure: skip)")
    assert st["result"]["facts"]  # the draft, passed on


def test_a_critical_agent_at_zero_fails_the_run_within_seconds_naming_it(
    cluster: ClusterHandle, ns: str, fleet: list[str], admin: redis.Redis, redis_server: RedisServer
) -> None:
    gate = worker("gate", "gate", "analyzer", redis_server.url, replicas=0, priority="critical")
    kubectl_apply(cluster, ns, gate)
    stages = [{"name": "draft", "agent": "coder"}, {"name": "check", "agent": "gate"}]
    kubectl_apply(cluster, ns, orchestration("gated", strategy="pipeline", input="x", pipeline={"stages": stages}))
    st = finished(cluster, ns, "gated")
    created = obj(cluster, ns, "gated")["metadata"]["creationTimestamp"]
    assert seconds(created, st["completedAt"]) <= 30, (created, st["completedAt"])
    failed = condition(st, "Failed")
    assert (st["phase"], failed["reason"]) == ("Failed", "AgentUnavailable")
    assert failed["message"] == (
        "stage 'check' needs critical agent 'gate', which is unavailable: scaled to zero replicas, without "
        "spec.autoscaling to wake it"
    )
    assert executions(admin, ns, "gated") == {}  # decided up front: not even the draft ran


def test_an_agent_whose_replicas_keep_exiting_says_why_and_runs_pass_it_over_at_once(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer
) -> None:
    require_ready_node(cluster)
    crasher = worker("crasher", "crasher", "analyzer", redis_server.url)
    crasher["spec"]["backend"] = {"python": {"entrypoint": "no_such_module:handle"}}  # its backend cannot start
    kubectl_apply(cluster, ns, crasher)
    st = unavailable_for(cluster, ns, "crasher", "ReplicasCrashing", timeout=150)
    assert st["phase"] == "Degraded" and condition(st, "Degraded")["reason"] == "ReplicasCrashing"
    why = condition(st, "Available")["message"]
    assert why.startswith("replica crasher-") and f"kubectl logs -n {ns} crasher-" in why, why
    # A run does not wait agentWaitSeconds for it: it goes to the fallback at once, saying why.
    stages = [{"name": "check", "agent": "crasher", "fallback": "tester"}]
    run = orchestration("past-crasher", strategy="pipeline", input="x", pipeline={"stages": stages})
    kubectl_apply(cluster, ns, run)
    st = finished(cluster, ns, "past-crasher", timeout=60)
    assert st["phase"] == "Succeeded" and st["degraded"], st
    assert (
        "agent 'crasher' unavailable (its replicas keep exiting: replica crasher-"
        in condition(st, "Degraded")["message"]
    )
    assert cluster.kubectl("delete", "-n", ns, "agent", "crasher", "--wait=false").returncode == 0


def test_an_agent_whose_container_cannot_be_created_says_why_and_starts_once_its_secret_exists(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer
) -> None:
    require_ready_node(cluster)
    keyless = worker("keyless", "keyless", "analyzer", redis_server.url)
    secret = {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "keyless-key", "key": "apiKey"}}}
    keyless["spec"]["template"]["env"].append(secret)  # a Secret not created yet: the kubelet cannot start it
    kubectl_apply(cluster, ns, keyless)
    st = unavailable_for(cluster, ns, "keyless", "ReplicasCannotStart", timeout=90)
    why = condition(st, "Available")["message"]
    assert st["phase"] == "Degraded" and "CreateContainerConfigError" in why and "keyless-key" in why, why
    # A run does not wait agentWaitSeconds for it: it goes to the fallback at once, saying why.
    stages = [{"name": "check", "agent": "keyless", "fallback": "tester"}]
    kubectl_apply(
        cluster, ns, orchestration("past-keyless", strategy="pipeline", input="x", pipeline={"stages": stages})
    )
    done = finished(cluster, ns, "past-keyless", timeout=60)
    assert (
        done["phase"] == "Succeeded"
        and "its replicas cannot start: replica keyless-" in condition(done, "Degraded")["message"]
    ), done
    # The Secret arrives: the kubelet starts the container, and the Agent is Ready with nothing else done.
    created = cluster.kubectl("create", "secret", "generic", "-n", ns, "keyless-key", "--from-literal=apiKey=k")
    assert created.returncode == 0, created.stderr
    wait_for("keyless Ready", lambda: status_of(cluster, ns, "agent", "keyless").get("phase") == "Ready", timeout=120)
    assert cluster.kubectl("delete", "-n", ns, "agent", "keyless", "--wait=false").returncode == 0


def test_an_optional_agent_at_zero_is_skipped_and_the_run_done_degraded(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer, operator: Operator
) -> None:
    extra = worker("extra", "extra", "analyzer", redis_server.url, replicas=0, priority="optional")
    kubectl_apply(cluster, ns, extra)
    tasks = [{"name": "main", "agents": ["coder"]}, {"name": "polish", "agents": ["extra"], "dependsOn": ["main"]}]
    kubectl_apply(
        cluster, ns, orchestration("optional", strategy="eventDriven", input="x", eventDriven={"tasks": tasks})
    )
    st = finished(cluster, ns, "optional")
    created = obj(cluster, ns, "optional")["metadata"]["creationTimestamp"]
    assert seconds(created, st["completedAt"]) <= 30, (created, st["completedAt"])
    assert st["phase"] == "Succeeded" and st["degraded"], st
    degraded = condition(st, "Degraded")
    assert degraded["status"] == "True" and "task-polish" in degraded["message"]
    assert "extra: unavailable: scaled to zero replicas" in degraded["message"]
    assert set(st["result"]) == {"main"} and st["progress"] == "2/2"
    # The pattern's events are on the run's stream: `podium run history` shows them, the operator counts them.
    env = {**cluster.env, "KUBECONFIG": str(cluster.kubeconfig), "PODIUM_REDIS_URL": redis_server.url}
    told = subprocess.run(
        [PODIUM, "run", "-n", ns, "history", "optional"], env=env, capture_output=True, text=True, timeout=60
    )
    assert told.returncode == 0, told.stderr
    for event in ("task.created", "task.completed", "agent.available", "task.no_agents_available", "workflow.failed"):
        assert f"engine {event} " in told.stdout, (event, told.stdout)
    counted = metric(
        operator, "podium_orchestration_events_total", namespace=ns, strategy="eventDriven", type="workflow.failed"
    )
    assert counted is not None and counted >= 1


def test_an_autoscaled_agent_at_zero_is_woken_by_the_run_and_waited_for(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer
) -> None:
    autoscaling = {"minReplicas": 0, "maxReplicas": 1, "scaleDownDelaySeconds": 10}
    sleeper = worker("sleeper", "sleeper", "researcher", redis_server.url, replicas=0, autoscaling=autoscaling)
    kubectl_apply(cluster, ns, sleeper)
    wait_for(
        "the sleeper at zero, Ready (ScaledToZero)",
        lambda: condition(status_of(cluster, ns, "agent", "sleeper"), "Ready").get("reason") == "ScaledToZero",
    )
    kubectl_apply(
        cluster,
        ns,
        orchestration(
            "wake",
            strategy="pipeline",
            input={"topic": "naps"},
            pipeline={"stages": [{"name": "work", "agent": "sleeper"}]},
        ),
    )
    st = finished(cluster, ns, "wake", timeout=240)
    assert st["phase"] == "Succeeded" and not st["degraded"], st
    assert st["tasks"][0]["agent"] == "sleeper" and st["progress"] == "1/1"
    # While it waited the run said so, naming the agent; once done it no longer waits.
    said = [e["message"] for e in events(cluster, ns, "Orchestration", "wake") if e["reason"] == "WaitingForAgent"]
    assert said and said[0].startswith("agent 'sleeper' is not ready (at zero replicas; its autoscaler starts one")
    assert condition(st, "Waiting")["status"] == "False"
    assert any(e["reason"] == "ScaledUp" for e in events(cluster, ns, "Agent", "sleeper"))


def test_a_task_left_for_an_agent_that_never_came_up_is_withdrawn(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer
) -> None:
    # Autoscaled, but its pod can never be scheduled: the run's task wakes it, it never comes up.
    autoscaling = {"minReplicas": 0, "maxReplicas": 1, "scaleDownDelaySeconds": 5}
    ghost = worker(
        "ghost", "ghost", "researcher", redis_server.url, replicas=0, autoscaling=autoscaling,
        template={"nodeSelector": {"podium.dev/none": "x"}},
    )  # fmt: skip
    kubectl_apply(cluster, ns, ghost)
    wait_for(
        "the ghost at zero, Ready (ScaledToZero)",
        lambda: condition(status_of(cluster, ns, "agent", "ghost"), "Ready").get("reason") == "ScaledToZero",
    )
    stages = [{"name": "check", "agent": "ghost", "fallback": "tester"}]
    kubectl_apply(
        cluster,
        ns,
        orchestration("unwoken", strategy="pipeline", input="x", agentWaitSeconds=5, pipeline={"stages": stages}),
    )
    st = finished(cluster, ns, "unwoken", timeout=120)
    assert st["phase"] == "Succeeded" and st["degraded"], st
    assert "agent 'ghost' unavailable (not ready within 5s (agentWaitSeconds)" in condition(st, "Degraded")["message"]
    # The task ghost never took is taken back as the run passes it over, so nothing runs for it when ghost does
    # come up, and its autoscaler, which counts queued tasks, lets it go back to zero.
    told = [e["message"] for e in events(cluster, ns, "Orchestration", "unwoken") if e["reason"] == "TasksWithdrawn"]
    assert told == ["queued tasks taken back (the run stopped waiting for them): 1 from ghost"], told
    inbox = AgentKeys(ns, "ghost").inbox
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.xlen(inbox) == 0
    assert any(e["reason"] == "ScaledUp" for e in events(cluster, ns, "Agent", "ghost"))
    wait_for(
        "the ghost scaled back to zero",
        lambda: any(e["reason"] == "ScaledDown" for e in events(cluster, ns, "Agent", "ghost")),
        timeout=90,
    )


def test_a_run_is_not_held_by_an_unready_agent_it_does_not_need(
    cluster: ClusterHandle, ns: str, fleet: list[str], redis_server: RedisServer
) -> None:
    # Its pod can never be scheduled: the Agent stays Initializing, in the run's scope (the whole namespace).
    stuck = worker(
        "stuck", "spare", "researcher", redis_server.url, template={"nodeSelector": {"podium.dev/none": "x"}}
    )
    kubectl_apply(cluster, ns, stuck)
    wait_for(
        "the stuck agent Initializing", lambda: status_of(cluster, ns, "agent", "stuck").get("phase") == "Initializing"
    )
    kubectl_apply(
        cluster,
        ns,
        orchestration(
            "unheld", strategy="pipeline", input="x", pipeline={"stages": [{"name": "w", "agent": "tester"}]}
        ),
    )
    st = finished(cluster, ns, "unheld")
    assert st["phase"] == "Succeeded" and not st["degraded"], st
    assert status_of(cluster, ns, "agent", "stuck")["phase"] == "Initializing"


def test_the_market_chooses_the_faster_agent_when_prices_tie(cluster: ClusterHandle, ns: str, fleet: list[str]) -> None:
    # One task each first, so their bids carry what they measured: quick about 0 s, sluggish about 2 s.
    warm = [{"name": "a", "agent": "quick"}, {"name": "b", "agent": "sluggish"}]
    kubectl_apply(cluster, ns, orchestration("warm-up", strategy="pipeline", input="x", pipeline={"stages": warm}))
    assert finished(cluster, ns, "warm-up")["phase"] == "Succeeded"
    market = {"tasks": [{"name": "summary"}]}
    selector = {"matchLabels": {"team": "market"}}
    kubectl_apply(
        cluster,
        ns,
        orchestration("by-time", strategy="market", agentSelector=selector, input={"text": "ties"}, market=market),
    )
    st = finished(cluster, ns, "by-time")
    assert st["phase"] == "Succeeded" and not st["degraded"], st
    sale = st["result"]["summary"]
    # Same price, same skills, same (new) reputation: time decides. On a full tie the later name would win.
    assert (sale["agent"], sale["price"]) == ("quick", 0.002), sale
    assert next(t["agent"] for t in st["tasks"] if t["name"] == "task-summary") == "quick"


def test_a_hierarchical_team_without_researchers_or_analysts_works_through_its_own_roles(
    cluster: ClusterHandle, ns: str, fleet: list[str]
) -> None:
    dev = {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Team",
        "metadata": {"name": "dev"},
        "spec": {
            "members": [{"agent": "coder"}, {"agent": "tester"}, {"agent": "reviewer"}],
            "roles": {"research": "coder", "analysis": "tester", "synthesis": "reviewer"},
        },
    }
    spec = {"coordinator": "planner", "teams": ["dev"]}
    kubectl_apply(
        cluster,
        ns,
        dev,
        orchestration(
            "dev-work", strategy="hierarchical", input={"goal": "Build a small parser for logs"}, hierarchical=spec
        ),
    )
    st = finished(cluster, ns, "dev-work")
    assert st["phase"] == "Succeeded" and not st["degraded"], st
    assert st["result"]["answer"]
    by_step = {t["name"]: t["agent"] for t in st["tasks"]}
    assert by_step["team-dev-1-research"] == "coder" and by_step["team-dev-1-analysis"] == "tester"
    assert by_step["team-dev-1-synthesis"] == "reviewer" and by_step["integrate"] == "planner"
    done, total = st["progress"].split("/")
    assert done == total == str(len(st["tasks"]))


def test_the_dispatch_breaker_shows_in_agent_status_kubectl_get_and_the_metric(
    cluster: ClusterHandle, ns: str, fleet: list[str], admin: redis.Redis, redis_server: RedisServer, operator: Operator
) -> None:
    breaker = {"timeoutSeconds": 30, "circuitBreaker": {"failureThreshold": 2, "recoveryTimeoutSeconds": 3}}
    kubectl_apply(cluster, ns, worker("flaky", "flaky", "flaky", redis_server.url, resilience=breaker))
    wait_for("flaky Ready 1/1", lambda: status_of(cluster, ns, "agent", "flaky").get("ready") == "1/1", timeout=120)
    admin.set(f"podium-test:fail:{ns}/flaky", "1")
    stage = [{"name": "s", "agent": "flaky", "retries": 1}]
    kubectl_apply(cluster, ns, orchestration("trip", strategy="pipeline", input="x", pipeline={"stages": stage}))
    assert finished(cluster, ns, "trip")["phase"] == "Failed"
    opened = wait_for(
        "status.breaker open",
        lambda: (s := status_of(cluster, ns, "agent", "flaky")).get("breaker", {}).get("state") == "open" and s,
    )
    assert opened["breaker"]["failures"] == 2 and opened["breaker"]["openedAt"]
    assert opened["phase"] == "Degraded" and condition(opened, "Degraded")["reason"] == "BreakerOpen"
    failures = opened["stats"]["recentFailures"]
    assert len(failures) == 2 and failures[0]["error"] == "flaky: RuntimeError: told to fail" and failures[0]["time"]
    shown = cluster.kubectl("get", "-n", ns, "agent", "flaky")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()[:2]
    column = header.index("BREAKER")  # kubectl pads columns: the value starts where its header does
    assert row[column:].split()[0] == "open", shown.stdout
    assert metric(operator, "podium_agent_breaker_state", namespace=ns, agent="flaky") == 2
    # Mended, and past its recovery timeout, the next run's task is the probe: it succeeds and closes the breaker.
    admin.delete(f"podium-test:fail:{ns}/flaky")
    opened_at = datetime.fromisoformat(opened["breaker"]["openedAt"].replace("Z", "+00:00")).timestamp()
    wait_for("the recovery timeout to pass", lambda: time.time() - opened_at > 4, timeout=30)
    kubectl_apply(cluster, ns, orchestration("probe", strategy="pipeline", input="x", pipeline={"stages": stage}))
    assert finished(cluster, ns, "probe")["phase"] == "Succeeded"
    closed = wait_for(
        "status.breaker closed",
        lambda: (s := status_of(cluster, ns, "agent", "flaky")).get("breaker", {}).get("state") == "closed" and s,
    )
    assert closed["breaker"]["failures"] == 0
    wait_for(
        "breaker metric 0", lambda: metric(operator, "podium_agent_breaker_state", namespace=ns, agent="flaky") == 0
    )
    reasons = [e["reason"] for e in events(cluster, ns, "Agent", "flaky")]
    assert "BreakerOpened" in reasons and "BreakerClosed" in reasons, reasons
