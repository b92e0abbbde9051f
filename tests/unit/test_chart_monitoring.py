"""The chart's monitoring and disruption options: ServiceMonitor, agent PodMonitor, PrometheusRule, PDB.

The alert rules are checked against what the code really exports (the operator's default registry and an
agent's registry), validated by `promtool check rules` and made to fire (or not) on synthetic series with
`promtool test rules`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from podium.api.agent import Agent, AgentPhase
from podium.api.orchestration import OrchestrationPhase
from podium.operator.agents import children
from podium.operator.agents.children import ChildSettings
from tests.support.chart import find, helm, helm_is_built, one, render
from tests.support.promql import TARGET_LABELS, code_metrics, promtool, selectors

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
MONITORING_ON = ("metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true",
                 "metrics.prometheusRule.enabled=true")  # fmt: skip
OPERATOR_JOB = 'job="podium-metrics"'  # the ServiceMonitor's job: the metrics Service's name


def test_promql_reader_finds_metrics_and_not_functions_labels_or_strings() -> None:
    expr = (
        'sum by (kind, phase) (rate(a_total{outcome="error", x=~"b_total|{c}"}[15m] offset 5m))\n'
        '  / on (kind) group_left () max without (pod) (b) > 0.1 and absent({__name__="c", job="j"}) or 1e3'
    )
    assert selectors(expr) == [("a_total", {"outcome": "error", "x": "b_total|{c}"}), ("b", {}), ("c", {"job": "j"})]
    with pytest.raises(ValueError, match="cannot read"):
        selectors("a{job=j}")


def rendered_rules(*sets: str) -> list[dict[str, Any]]:
    rule = one(render(*MONITORING_ON, *sets), "PrometheusRule")
    rules: list[dict[str, Any]] = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    return rules


def test_alerts_use_only_metrics_and_labels_the_code_exports() -> None:
    names, labels = code_metrics()
    assert "podium_operator_reconciles_total" in names and "podium_agent_tasks_total" in names  # the reader works
    rules = rendered_rules()
    assert len(rules) >= 7
    for rule in rules:
        found = selectors(rule["expr"])
        assert found, rule["alert"]
        for name, matchers in found:
            assert name in names, f"{rule['alert']}: {name} is not a metric Podium exports"
            unknown = matchers.keys() - labels[name] - TARGET_LABELS
            assert not unknown, f"{rule['alert']}: {name} has no label {unknown}"
            if "phase" in matchers:
                phases = OrchestrationPhase if name.startswith("podium_orchestration") else AgentPhase
                assert set(matchers["phase"].split("|")) <= {p.value for p in phases}, rule["alert"]


def test_every_alert_says_what_happened_and_links_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS_DOC.read_text().splitlines()
        if line.startswith("#")
    }
    rules = rendered_rules("metrics.prometheusRule.runbookBaseURL=https://docs.example/ops")
    for rule in rules:
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        base, _, anchor = notes["runbook_url"].partition("#")
        assert base == "https://docs.example/ops", rule["alert"]
        assert anchor in headings, f"{rule['alert']}: docs/operations.md has no section #{anchor}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


# --- promtool --------------------------------------------------------------------------------------------


def write_rules(path: Path, rules_object: dict[str, Any], annotations: bool = True) -> None:
    groups = rules_object["spec"]["groups"]
    if not annotations:
        # `promtool test rules` compares annotations whole; the alert tests below are about when and for what.
        groups = [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
                  for g in groups]  # fmt: skip
    path.write_text(yaml.safe_dump({"groups": groups}))


def test_promtool_accepts_the_rendered_rules(tmp_path: Path) -> None:
    for sets in ((), ('metrics.prometheusRule.operatorSelector=namespace="ops"\\,service="podium"',)):
        write_rules(tmp_path / "rules.yaml", one(render(*MONITORING_ON, *sets), "PrometheusRule"))
        out = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def op_series(name: str, values: str, **labels: str) -> dict[str, str]:
    return series(name, values, job="podium-metrics", **labels)


def fires(alert: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": e} for e in expected]}


RUNS = "podium_orchestrations_finished_total"
WRITER = {"namespace": "team-a", "agent": "writer"}
READER = {"namespace": "team-a", "agent": "reader"}
WARN = {"severity": "warning"}

# Each case: input series (1m apart) and, at given times, exactly the alerts expected (none = [] after it).
ALERT_CASES: list[dict[str, Any]] = [
    {  # no operator series at all: down; the other group's operator is up
        "input_series": [series("podium_teams_degraded", "0x10", job="something-else")],
        "alert_rule_test": [
            fires("PodiumOperatorDown", "3m"),
            fires("PodiumOperatorDown", "6m", {"severity": "critical", "job": "podium-metrics"}),
        ],
    },
    {
        "input_series": [
            op_series("podium_teams_degraded", "0 0 2x20"),
            op_series("podium_crds_outdated", "0 0 1x20"),  # an operator upgraded without its CRDs
            op_series("podium_agent_breaker_state", "0 0 2x20", **WRITER),
            op_series("podium_agent_breaker_state", "0 1 1x20", **READER),  # half-open: a probe is out
            op_series("podium_agents", "0 0 1x20", phase="Degraded"),
            op_series("podium_agents", "0 0 0x20", phase="Error"),
            op_series("podium_agents", "4x22", phase="Ready"),
            op_series("podium_agent_queue_depth", "50+10x30", **WRITER),  # above the threshold and growing
            op_series("podium_agent_queue_depth", "500x30", **READER),  # large but steady: being worked off
            op_series("podium_agent_dead_letters", "0 0 0 2 2 2x30", **WRITER),  # two arrive at 3m, then none
            op_series("podium_agent_dead_letters", "7x35", **READER),  # old ones, nothing new
            op_series("podium_agent_replica_restarts_total", "0+1x10", **WRITER),
            op_series("podium_agent_replica_restarts_total", "0 1 1 1 1 1 1 1 1 1 1", **READER),
            op_series("podium_operator_reconciles_total", "0+1x30", kind="Agent", outcome="error"),
            op_series("podium_operator_reconciles_total", "0+1x30", kind="Agent", outcome="success"),
            op_series("podium_operator_reconciles_total", "0x30", kind="Team", outcome="error"),
            op_series("podium_operator_reconciles_total", "0+5x30", kind="Team", outcome="success"),
            series("podium_agent_tasks_total", "0+1x20", outcome="ok", **WRITER),
            series("podium_agent_tasks_total", "0+1x20", outcome="timeout", **WRITER),
            series("podium_agent_backend_errors_total", "0+1x20", **WRITER),
            series("podium_agent_tasks_total", "0+9x20", outcome="ok", **READER),
            series("podium_agent_tasks_total", "0+1x20", outcome="error", **READER),
            series("podium_agent_backend_errors_total", "0+1x20", **READER),  # 10%: under the 25% line
            op_series(RUNS, "0+1x30", namespace="team-a", strategy="swarm", phase="Failed", reason="BudgetExceeded"),
            op_series(RUNS, "0+1x30", namespace="team-a", strategy="swarm", phase="Succeeded", reason="Completed"),
            op_series(RUNS, "0+1x30", namespace="team-a", strategy="market", phase="Failed", reason="TaskFailed"),
            op_series(RUNS, "0+9x30", namespace="team-a", strategy="market", phase="Succeeded", reason="Completed"),
        ],
        "alert_rule_test": [
            fires("PodiumOperatorDown", "10m"),
            fires("PodiumAgentBreakerOpen", "5m"),
            fires("PodiumAgentBreakerOpen", "8m", {**WARN, **WRITER}),
            fires("PodiumTeamsDegraded", "10m"),
            fires("PodiumTeamsDegraded", "18m", WARN),
            fires("PodiumCRDsOutdated", "5m"),
            fires("PodiumCRDsOutdated", "8m", WARN),
            fires("PodiumAgentsUnhealthy", "8m"),
            fires("PodiumAgentsUnhealthy", "13m", {**WARN, "phase": "Degraded"}),
            fires("PodiumAgentBacklogGrowing", "15m"),
            fires("PodiumAgentBacklogGrowing", "25m", {**WARN, **WRITER}),
            fires("PodiumAgentReplicasRestarting", "10m", {**WARN, **WRITER}),
            fires("PodiumAgentDeadLetters", "2m"),
            fires("PodiumAgentDeadLetters", "10m", {**WARN, **WRITER}),
            fires("PodiumAgentDeadLetters", "34m"),
            fires("PodiumReconcileErrors", "30m", {**WARN, "kind": "Agent"}),
            fires("PodiumAgentTaskFailures", "20m", {**WARN, **WRITER}),
            # swarm: half its runs fail, market 10%: neither is over the 0.5 line.
            fires("PodiumOrchestrationsFailing", "20m"),
        ],
    },
    {
        "input_series": [
            op_series("podium_teams_degraded", "0x30"),
            op_series(RUNS, "0+3x30", namespace="team-a", strategy="swarm", phase="Failed", reason="BudgetExceeded"),
            op_series(RUNS, "0+1x30", namespace="team-a", strategy="swarm", phase="Succeeded", reason="Completed"),
            op_series(RUNS, "0+1x30", namespace="team-b", strategy="swarm", phase="Succeeded", reason="Completed"),
        ],
        "alert_rule_test": [
            fires("PodiumOrchestrationsFailing", "10m", {**WARN, "namespace": "team-a", "strategy": "swarm"}),
        ],
    },
]


def test_alerts_fire_for_what_they_name_and_stay_quiet_otherwise(tmp_path: Path) -> None:
    write_rules(tmp_path / "rules.yaml", one(render(*MONITORING_ON), "PrometheusRule"), annotations=False)
    tests = [{"interval": "1m", **case} for case in ALERT_CASES]
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    out = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = {t["alertname"] for case in ALERT_CASES for t in case["alert_rule_test"]}
    assert tested == {r["alert"] for r in rendered_rules()}, "every alert has a case"


# --- monitors and the PDB ----------------------------------------------------------------------------------


def test_monitoring_and_pdb_are_off_by_default() -> None:
    docs = render()
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule", "PodDisruptionBudget"):
        assert not find(docs, kind), kind


def test_service_monitor_takes_interval_and_labels_and_keeps_the_agents_namespace_label() -> None:
    docs = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.interval=15s",
                  "metrics.serviceMonitor.labels.release=kube-prometheus-stack")  # fmt: skip
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["interval"] == "15s" and endpoint["honorLabels"] is True
    out = helm("template", "podium", str(ROOT / "charts" / "podium"), "--kube-version", "v1.34.4",
               "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.enabled=false")  # fmt: skip
    assert out.returncode != 0 and "metrics.enabled" in out.stderr


def agent_pod(name: str, namespace: str) -> dict[str, Any]:
    agent = Agent.model_validate(
        {"metadata": {"name": name, "namespace": namespace, "uid": f"u-{name}", "generation": 1},
         "spec": {"role": "writer", "backend": {"command": {"args": ["cat"]}}}}
    )  # fmt: skip
    settings = ChildSettings(agent_image="ghcr.io/podium-dev/podium-agent:0.1.0", redis_url="redis://r:6379/0")
    template: dict[str, Any] = children.deployment(agent, settings, 1)["spec"]["template"]
    return template


def test_pod_monitor_scrapes_every_agent_pod_the_operator_makes() -> None:
    docs = render("metrics.podMonitor.enabled=true", "metrics.podMonitor.labels.team=platform")
    monitor = one(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["team"] == "platform"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    for pod in (agent_pod("writer", "team-a"), agent_pod("a-much-longer-reviewer-name", "team-b")):
        assert selector.items() <= pod["metadata"]["labels"].items()
        ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert endpoint["port"] in ports
        assert str(ports[endpoint["port"]]) == pod["metadata"]["annotations"]["prometheus.io/port"]
    assert endpoint["path"] == "/metrics"
    # The operator's own pods are not agents.
    operator_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= operator_labels.items()

    namespaced = one(render("metrics.podMonitor.enabled=true", "watchNamespaces={team-a,team-b}"), "PodMonitor")
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ((), False),  # auto with one replica: a PDB would block every drain
        (("replicaCount=2",), True),
        (("replicaCount=3", "podDisruptionBudget.enabled=false"), False),
        (("podDisruptionBudget.enabled=true",), True),
    ],
)
def test_pdb_keeps_one_operator_pod_through_drains(sets: tuple[str, ...], expected: bool) -> None:
    docs = render(*sets)
    pdbs = find(docs, "PodDisruptionBudget")
    assert bool(pdbs) == expected
    if pdbs:
        spec = pdbs[0]["spec"]
        assert pdbs[0]["apiVersion"] == "policy/v1" and spec["minAvailable"] == 1
        pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
        # Redis is a separate workload the PDB must not hold.
        redis_labels = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
        assert not spec["selector"]["matchLabels"].items() <= redis_labels.items()


def test_pdb_setting_other_than_auto_true_false_is_refused() -> None:
    out = helm("template", "podium", str(ROOT / "charts" / "podium"), "--kube-version", "v1.34.4",
               "--set", "podDisruptionBudget.enabled=sometimes")  # fmt: skip
    assert out.returncode != 0
    assert "at '/podDisruptionBudget/enabled': value must be one of 'auto', true, false" in out.stderr


def test_helm_lint_is_clean_with_everything_on() -> None:
    sets = (*MONITORING_ON, "replicaCount=2", "watchNamespaces={a}")
    args = [a for s in sets for a in ("--set", s)]
    out = helm("lint", str(ROOT / "charts" / "podium"), "--strict", "--kube-version", "v1.34.4", *args)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_without_a_way_to_find_the_operator_are_refused_with_the_fix() -> None:
    chart = str(ROOT / "charts" / "podium")
    out = helm("template", "podium", chart, "--kube-version", "v1.34.4", "--set", "metrics.prometheusRule.enabled=true")
    assert out.returncode != 0
    assert "metrics.serviceMonitor.enabled=true" in out.stderr and "operatorSelector" in out.stderr
    own_scrape = render("metrics.prometheusRule.enabled=true", 'metrics.prometheusRule.operatorSelector=job="ops"')
    down = next(
        r for r in one(own_scrape, "PrometheusRule")["spec"]["groups"][0]["rules"] if r["alert"] == "PodiumOperatorDown"
    )
    assert down["expr"] == 'absent(podium_teams_degraded{job="ops"})'
