"""The chart's values schema, its `helm test` hook and its NetworkPolicies, as the pinned helm renders them.

The policies are checked by what they allow (tests/support/netpol.py evaluates them as a CNI would): the local
cluster has no CNI to enforce them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from podium.cli.selftest import INPUT, manifests, verdict
from tests.support.chart import CHART, KUBE, NAMESPACE, as_set, find, helm, helm_is_built, one, render
from tests.support.netpol import Endpoint, allowed, outside, pod

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
FREE_FORM = {
    # Kubernetes' own structures, validated by the API server and kubeconform, not by the chart's schema.
    "affinity",
    "tolerations.items",
    "podSelector",
    "namespaceSelector",
    "claims.items",
    "valueFrom",
    "ports.items",
    "global",
}


def template(*sets: str, files: tuple[Path, ...] = ()) -> Any:
    args = ["template", "podium", str(CHART), "--namespace", NAMESPACE, *KUBE]
    for s in sets:
        args += ["--set", s]
    for f in files:
        args += ["-f", str(f)]
    return helm(*args)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("redis.enabeld=false", "at '/redis': additional properties 'enabeld' not allowed"),
        ("replicas=2", "at '': additional properties 'replicas' not allowed"),
        ("metrics.grafanaDashboard.lables.x=y", "at '/metrics/grafanaDashboard': additional properties 'lables'"),
        ("viewer.servcie.port=80", "at '/viewer': additional properties 'servcie' not allowed"),
        ("modelServer.contextsize=4096", "at '/modelServer': additional properties 'contextsize' not allowed"),
        ("networkPolicy.enable=true", "at '/networkPolicy': additional properties 'enable' not allowed"),
        ("tests.timeout=60", "at '/tests': additional properties 'timeout' not allowed"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent'"),
        ("logFormat=xml", "at '/logFormat': value must be one of 'json', 'text'"),
        ("metrics.port=0", "at '/metrics/port': minimum: got 0, want 1"),
        ("replicaCount=two", "at '/replicaCount': got string, want integer"),
        ("watchNamespaces={Team_A}", "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
        ("redis.url=http://redis:6379", "at '/redis/url': 'http://redis:6379' does not match pattern"),
        ("metrics.prometheusRule.taskFailureRatio=2", "at '/metrics/prometheusRule/taskFailureRatio': maximum"),
        ("metrics.serviceMonitor.interval=soon", "at '/metrics/serviceMonitor/interval': 'soon' does not match"),
    ],
)
def test_a_typo_or_a_bad_value_fails_with_the_schema_naming_it(setting: str, complaint: str) -> None:
    out = template(setting)
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr
    assert complaint in out.stderr, out.stderr


def _schema_at(path: list[str]) -> dict[str, Any] | None:
    node: dict[str, Any] = SCHEMA
    for key in path:
        while "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        if "anyOf" in node:
            node = next((n for n in node["anyOf"] if "$ref" in n or "properties" in n), node["anyOf"][0])
            while "$ref" in node:
                node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        props = node.get("properties") or {}
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def _leaves(value: Any, path: list[str]) -> list[list[str]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaves(v, [*path, k])]
    return [path]


def test_every_value_in_values_yaml_is_in_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [".".join(p) for p in _leaves(values, []) if _schema_at(p) is None]
    assert missing == []


def test_every_object_of_the_schema_refuses_unknown_keys_unless_it_is_kubernetes_own() -> None:
    open_objects = []

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(where)
        if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
            if not any(where == f or where.endswith(f".{f}") for f in FREE_FORM):
                open_objects.append(where)
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, f"{where}.{key}")
        for key in ("items", "additionalProperties"):
            walk(node.get(key), f"{where}.{key}")
        for key, sub in (node.get("definitions") or {}).items():
            walk(sub, key)

    walk(SCHEMA, "values")
    assert open_objects == []


def test_the_example_values_files_pass_the_schema() -> None:
    for values in sorted((CHART / "ci").glob("*.yaml")):
        out = template(files=(values,))
        assert out.returncode == 0, f"{values.name}: {out.stderr}"


# -- helm test ------------------------------------------------------------------------------------------------------


def hook_objects(*sets: str) -> list[dict[str, Any]]:
    return [d for d in render(*sets, hooks=True) if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]


def test_helm_test_runs_podium_selftest_in_a_restricted_pod_with_a_minimal_role() -> None:
    objects = hook_objects()
    assert sorted(o["kind"] for o in objects) == ["Pod", "Role", "RoleBinding", "ServiceAccount"]
    test_pod = one(objects, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = test_pod["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["podium", "selftest"]
    assert "--namespace=podium-system" in container["args"]
    # Pod Security Standards, restricted profile.
    assert spec["restartPolicy"] == "Never" and spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    role = one(objects, "Role")
    assert as_set(role["rules"]) == {
        ("podium.dev", resource, verb)
        for resource in ("agents", "orchestrations")
        for verb in ("create", "get", "delete")
    }
    binding = one(objects, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": spec["serviceAccountName"], "namespace": NAMESPACE}
    ]
    # Its rights go when it passes (kept to debug a failure); the pod stays for its log until the next helm test.
    for obj in objects:
        policy = obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        assert policy == ("before-hook-creation" if obj["kind"] == "Pod" else "before-hook-creation,hook-succeeded")


def test_helm_test_runs_where_the_operator_watches() -> None:
    assert one(hook_objects("watchNamespaces={team-a,team-b}"), "Role")["metadata"]["namespace"] == "team-a"
    assert one(hook_objects("tests.namespace=team-b"), "Role")["metadata"]["namespace"] == "team-b"
    assert hook_objects("tests.enabled=false") == []


def test_the_selftest_asks_for_one_task_and_checks_it_is_the_agents_answer() -> None:
    agent, orchestration = manifests("t")
    assert agent["spec"]["backend"] == {"python": {"entrypoint": "podium.demo.agents:documenter"}}
    (stage,) = orchestration["spec"]["pipeline"]["stages"]
    assert stage["agent"] == "t" and orchestration["spec"]["limits"]["maxTasks"] == 4
    assert verdict({"phase": "Succeeded", "result": {"summary": INPUT, "title": "x"}}) is None
    assert "ended Failed: stage summarize failed" in str(
        verdict({"phase": "Failed", "message": "stage summarize failed"})
    )
    assert "not the agent's answer" in str(verdict({"phase": "Succeeded", "result": {"summary": "other"}}))


# -- NetworkPolicies ----------------------------------------------------------------------------------------------

OPERATOR = pod(NAMESPACE, {"app.kubernetes.io/name": "podium", "app.kubernetes.io/instance": "podium",
                           "app.kubernetes.io/component": "operator"})  # fmt: skip
REDIS = pod(NAMESPACE, {"app.kubernetes.io/instance": "podium", "app.kubernetes.io/component": "redis"})
MODEL = pod(NAMESPACE, {"app.kubernetes.io/name": "podium", "app.kubernetes.io/instance": "podium",
                        "app.kubernetes.io/component": "model-server"})  # fmt: skip
VIEWER = pod(NAMESPACE, {"app.kubernetes.io/name": "podium", "app.kubernetes.io/instance": "podium",
                         "app.kubernetes.io/component": "viewer"})  # fmt: skip
DNS = pod("kube-system", {"k8s-app": "kube-dns"})
AGENT_LABELS = {"app.kubernetes.io/name": "podium-agent", "app.kubernetes.io/managed-by": "podium-operator",
                "podium.dev/agent": "writer"}  # fmt: skip


def agent_in(namespace: str, **namespace_labels: str) -> Endpoint:
    return pod(namespace, AGENT_LABELS, **namespace_labels)


def policies(*sets: str) -> list[dict[str, Any]]:
    return find(render("networkPolicy.enabled=true", *sets), "NetworkPolicy")


def test_agents_reach_dns_redis_and_the_model_server_and_nothing_else() -> None:
    nps = policies("watchNamespaces={team-a}", "modelServer.enabled=true")
    agent = agent_in("team-a")
    assert allowed(nps, agent, REDIS, 6379)
    assert allowed(nps, agent, MODEL, 8080)
    assert allowed(nps, agent, DNS, 53, "UDP") and allowed(nps, agent, DNS, 53, "TCP")
    assert not allowed(nps, agent, OPERATOR, 9090)
    assert not allowed(nps, agent, agent_in("team-a"), 8080)  # not even another agent's admin port
    assert not allowed(nps, agent, outside("203.0.113.7"), 443)  # the internet
    assert not allowed(nps, agent, outside("10.96.0.1"), 443)  # the API server
    assert not allowed(nps, agent, REDIS, 6380)


def test_only_the_operator_reaches_the_agents_admin_port() -> None:
    nps = policies("watchNamespaces={team-a}")
    agent = agent_in("team-a")
    assert allowed(nps, OPERATOR, agent, 8080)
    assert not allowed(nps, pod("team-a", {"app": "curious"}), agent, 8080)
    assert not allowed(nps, pod("elsewhere", {}), agent, 8080)
    assert not allowed(nps, pod("team-a", {"app": "curious"}), agent, 8081)  # A2A: nobody unless a2a.from says so


def test_a2a_metrics_and_extra_egress_open_only_what_their_values_name() -> None:
    nps = policies(
        "watchNamespaces={team-a}",
        "networkPolicy.a2a.from[0].namespaceSelector.matchLabels.a2a=clients",
        "networkPolicy.metrics.from[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
        "networkPolicy.agentEgress[0].to[0].ipBlock.cidr=0.0.0.0/0",
        "networkPolicy.agentEgress[0].ports[0].port=443",
    )
    agent = agent_in("team-a")
    client = pod("partners", {"app": "adk-agent"}, a2a="clients")
    assert allowed(nps, client, agent, 8081)
    assert not allowed(nps, client, agent, 8080)
    assert not allowed(nps, pod("strangers", {}), agent, 8081)
    prometheus = pod("monitoring", {"app": "prometheus"})
    assert allowed(nps, prometheus, agent, 8080) and not allowed(nps, prometheus, agent, 8081)
    assert allowed(nps, agent, outside("203.0.113.7"), 443)
    assert not allowed(nps, agent, outside("203.0.113.7"), 80)


def test_redis_takes_only_podium_pods() -> None:
    nps = policies("watchNamespaces={team-a}", "viewer.enabled=true")
    assert allowed(nps, OPERATOR, REDIS, 6379)
    assert allowed(nps, VIEWER, REDIS, 6379)
    assert allowed(nps, agent_in("team-a"), REDIS, 6379)
    assert not allowed(nps, agent_in("team-z"), REDIS, 6379)  # an agent of a namespace this release does not serve
    assert not allowed(nps, pod(NAMESPACE, {"app": "other"}), REDIS, 6379)
    assert not allowed(nps, pod("team-a", {"app": "other"}), REDIS, 6379)


def test_the_helm_test_agent_can_reach_redis_too() -> None:
    # Its Agent runs in the release namespace by default: that namespace gets the agents' policy as well.
    nps = policies("networkPolicy.agentNamespaces={team-a}")
    assert {p["metadata"]["namespace"] for p in nps if p["metadata"]["name"] == "podium-agents"} == {
        "team-a",
        NAMESPACE,
    }
    assert allowed(nps, agent_in(NAMESPACE), REDIS, 6379)


def test_external_redis_is_reached_where_networkpolicy_redis_to_says() -> None:
    nps = policies(
        "redis.enabled=false", "redis.url=redis://10.0.5.10:6379/0",
        "networkPolicy.agentNamespaces={agents}", "networkPolicy.redis.to[0].ipBlock.cidr=10.0.5.10/32",
    )  # fmt: skip
    assert allowed(nps, agent_in("agents"), outside("10.0.5.10"), 6379)
    assert not allowed(nps, agent_in("agents"), outside("10.0.5.11"), 6379)


def test_missing_networkpolicy_inputs_fail_with_what_to_set() -> None:
    out = template("networkPolicy.enabled=true")
    assert out.returncode != 0 and "needs networkPolicy.agentNamespaces" in out.stderr
    out = template(
        "networkPolicy.enabled=true", "watchNamespaces={a}", "redis.enabled=false", "redis.url=redis://r:6379/0"
    )
    assert out.returncode != 0 and "needs networkPolicy.redis.to" in out.stderr


def test_no_networkpolicy_unless_enabled() -> None:
    assert find(render("watchNamespaces={team-a}"), "NetworkPolicy") == []
