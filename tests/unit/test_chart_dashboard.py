"""The chart's Grafana dashboard: a ConfigMap for Grafana's sidecar, whose every query asks only for what the code
exports, parses in Prometheus (promtool) and lays its panels out without overlap. That each query returns series
from a real Prometheus scraping the local cluster is tests/cluster/test_dashboard.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import find, helm_is_built, one, render
from tests.support.promql import TARGET_LABELS, code_metrics, promtool, selectors

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "podium" / "dashboards" / "podium.json"
ON = "metrics.grafanaDashboard.enabled=true"
# What Grafana puts in for its variables when it runs a query (tests/cluster/test_dashboard.py does the same).
VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$namespace": ".*"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, Grafana's variables filled in."""
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out


def test_the_dashboard_is_off_by_default_and_a_sidecar_configmap_when_on() -> None:
    assert not find(render(), "ConfigMap", "podium-dashboard")
    docs = render(ON, "metrics.grafanaDashboard.namespace=monitoring",
                  "metrics.grafanaDashboard.annotations.grafana_folder=Podium")  # fmt: skip
    cm = one(docs, "ConfigMap", "podium-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Podium"}
    assert json.loads(cm["data"]["podium.json"]) == dashboard()  # the file, whole and unchanged
    relabelled = one(render(ON, "metrics.grafanaDashboard.labels.find_me=yes"), "ConfigMap", "podium-dashboard")
    assert relabelled["metadata"]["labels"]["find_me"] == "yes"


def test_it_shows_runs_tasks_agents_breakers_backlog_replicas_dead_letters_cost_and_tokens() -> None:
    board = dashboard()
    used = {name for _, expr in queries(board) for name, _ in selectors(expr)}
    for metric in (
        "podium_orchestrations_finished_total",  # runs by strategy and phase
        "podium_orchestration_duration_seconds_bucket",
        "podium_agent_tasks_total",  # throughput
        "podium_agent_task_duration_seconds_bucket",  # latency
        "podium_agents",  # agents by phase
        "podium_agent_breaker_state",
        "podium_agent_queue_depth",  # backlog
        "podium_agent_autoscaler_desired_replicas",  # replicas
        "podium_agent_dead_letters",
        "podium_orchestration_cost_total",
        "podium_orchestration_tokens_total",
        "podium_agent_tokens_total",
    ):
        assert metric in used, metric
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "namespace"]


def test_every_query_asks_only_for_metrics_and_labels_the_code_exports() -> None:
    names, labels = code_metrics()
    for title, expr in queries(dashboard()):
        found = selectors(expr)
        assert found, title
        for name, matchers in found:
            assert name in names, f"{title}: {name} is not a metric Podium exports"
            unknown = matchers.keys() - labels[name] - TARGET_LABELS
            assert not unknown, f"{title}: {name} has no label {unknown}"
            # A scraped series' `namespace` is the target's unless the metric has its own (the operator's gauges
            # of every agent): filtering on it would pick the operator's namespace, not the agents'.
            if "namespace" in matchers:
                assert "namespace" in labels[name], f"{title}: {name} has no namespace label of its own"


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    rules = [{"record": f"podium:panel_{i}", "expr": expr} for i, (_, expr) in enumerate(queries(dashboard()))]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_panels_have_unique_ids_and_titles_a_description_and_do_not_overlap() -> None:
    board = dashboard()
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    titled = [p["title"] for p in panels if p["type"] != "row"]
    assert len(set(titled)) == len(titled)
    taken: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells
        if p["type"] == "row":
            continue
        assert p["description"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs), p["title"]
