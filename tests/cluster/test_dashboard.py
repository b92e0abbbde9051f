"""The chart's Grafana dashboard against a real Prometheus scraping the local cluster.

`podium operator` runs as a process, the examples' agents (one of them autoscaled) run as pods, and three runs
end (two Succeeded, one Failed on purpose). Prometheus scrapes the operator's /metrics and the agent pods found
through the Kubernetes API by their prometheus.io annotations (tests/cluster/prometheus.py). Every query of every
panel, taken from the rendered chart, must then return series; a few must also say what happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import render
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import Operator, require_ready_node
from .prometheus import Prometheus, running_prometheus

ROOT = Path(__file__).resolve().parents[2]
# The examples with the deterministic demo agents (examples/ itself runs language-model agents).
EXAMPLES = ROOT / "tests" / "data" / "deterministic"


def scaled_agent() -> dict[str, Any]:
    """A demo agent under the operator's backlog autoscaler, so the desired-replicas series exists."""
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "scaled", "labels": {"team": "other"}},
        "spec": {
            "role": "helper",
            "capabilities": [{"name": "helping"}],
            "backend": {"python": {"entrypoint": "podium.demo.agents:documenter"}},
            "replicas": 1,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 2, "targetBacklogPerReplica": 10},
        },
    }


def failing_run() -> dict[str, Any]:
    """A pipeline that fails: its one stage's output never passes validation, and the agent is critical."""
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Orchestration",
        "metadata": {"name": "never-valid"},
        "spec": {
            "strategy": "pipeline",
            "team": "research",
            "input": {"text": "anything"},
            "pipeline": {"stages": [{"name": "write", "agent": "synthesizer", "retries": 0,
                                     "validate": {"jsonSchema": {"type": "string"}}}]},
            "limits": {"timeoutSeconds": 60},
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def fleet(cluster: ClusterHandle, ns: str, operator: Operator) -> int:
    """The examples' agents and teams plus the autoscaled one, all Ready; how many agent pods run."""
    require_ready_node(cluster)
    out = cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "agents.yaml"), "-f", str(EXAMPLES / "teams.yaml"))
    assert out.returncode == 0, out.stderr
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(scaled_agent()))
    assert out.returncode == 0, out.stderr
    ready = cluster.kubectl("wait", "-n", ns, "agent", "--all", "--for=condition=Ready", "--timeout=240s", timeout=260)
    assert ready.returncode == 0, ready.stderr + cluster.kubectl("get", "-n", ns, "agents,pods").stdout
    agents = json.loads(cluster.kubectl("get", "-n", ns, "agents", "-o", "json").stdout)["items"]
    return sum(int(a["spec"].get("replicas", 1)) for a in agents)


@pytest.fixture(scope="module")
def prometheus(
    cluster: ClusterHandle, ns: str, operator: Operator, fleet: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    yield from running_prometheus(cluster, ns, operator, fleet, tmp_path_factory)


@pytest.fixture(scope="module")
def runs(cluster: ClusterHandle, ns: str, prometheus: Prometheus) -> dict[str, str]:
    """Three runs ended: name -> phase."""
    docs = [yaml.safe_load((EXAMPLES / f).read_text()) for f in ("event-driven.yaml", "swarm.yaml")]
    docs.append(failing_run())
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    assert out.returncode == 0, out.stderr
    names = [d["metadata"]["name"] for d in docs]

    def ended() -> dict[str, str] | None:
        got = json.loads(cluster.kubectl("get", "-n", ns, "orchestrations", "-o", "json").stdout)["items"]
        phases = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in got}
        return phases if all(phases.get(n) in ("Succeeded", "Failed") for n in names) else None

    phases: dict[str, str] = wait_for("the runs to end", ended, timeout=180, every=1.0)
    assert phases == {"release-notes": "Succeeded", "name-search": "Succeeded", "never-valid": "Failed"}, phases
    return phases


def panel_queries(namespace: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard the chart renders, as Grafana would send them."""
    cm = next(d for d in render("metrics.grafanaDashboard.enabled=true") if d["kind"] == "ConfigMap"
              and d["metadata"]["name"].endswith("-dashboard"))  # fmt: skip
    board = json.loads(cm["data"]["podium.json"])
    filled = {"$__rate_interval": "1m", "$__range": "15m", "$namespace": namespace}
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in filled.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out


def test_every_panel_query_returns_series(prometheus: Prometheus, runs: dict[str, str], ns: str) -> None:
    queries = panel_queries(ns)
    assert len(queries) >= 20

    missing: list[str] = []

    def all_answer() -> bool:
        missing[:] = [f"{title}: {expr}" for title, expr in queries if not prometheus.query(expr)]
        return not missing

    # Rates need two scrapes after the runs ended; the operator's gauges follow its health rounds.
    try:
        wait_for("every panel's query to return series", all_answer, timeout=90, every=2.0)
    except AssertionError:
        raise AssertionError("panels whose query returns no series:\n" + "\n".join(missing)) from None


def by(prometheus: Prometheus, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s["metric"].get(k, "") for k in labels): float(s["value"][1]) for s in prometheus.query(expr)}


def test_the_panels_say_what_happened(prometheus: Prometheus, runs: dict[str, str], ns: str, fleet: int) -> None:
    queries = dict(panel_queries(ns))
    want = {("eventDriven", "Succeeded"), ("swarm", "Succeeded"), ("pipeline", "Failed")}

    def every_run_ended() -> dict[tuple[str, ...], float] | None:
        got = by(prometheus, queries["Runs ended by strategy and phase"], "strategy", "phase")
        return got if want <= set(got) else None

    # A run's series shows once a scrape after its end has reached Prometheus: one may come a scrape later.
    wait_for("every run in the runs-ended panel", every_run_ended, timeout=60, every=2.0)
    failed = by(prometheus, queries["Failed runs per minute, by reason"], "reason")
    assert set(failed) == {("TaskFailed",)}, failed
    cost = by(prometheus, queries["Cost of ended runs, by strategy"], "strategy")
    assert {("eventDriven",), ("swarm",), ("pipeline",)} <= set(cost)

    replicas = by(prometheus, f'count by (agent) (podium_agent_in_flight{{namespace="{ns}"}})', "agent")
    assert replicas[("researcher",)] == 2 and sum(replicas.values()) == fleet  # the deterministic agents.yaml: 2
    desired = by(prometheus, f'podium_agent_autoscaler_desired_replicas{{namespace="{ns}"}}', "agent")
    assert desired == {("scaled",): 1.0}
    breakers = by(prometheus, f'podium_agent_breaker_state{{namespace="{ns}"}}', "agent")
    assert len(breakers) == 7 and set(breakers.values()) == {0.0}  # every breaker closed
    tasks = by(prometheus, f'sum by (agent) (podium_agent_tasks_total{{namespace="{ns}", outcome="ok"}})', "agent")
    assert tasks[("researcher",)] >= 1 and tasks[("analyzer",)] >= 1
