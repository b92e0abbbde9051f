"""The Helm chart as rendered by the pinned helm: lint, security context, RBAC, CRDs, values toggles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.chart import CHART, KUBE, NAMESPACE, as_set, env_of, find, helm, helm_is_built, one, render

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)

ROOT = Path(__file__).resolve().parents[2]
# helm built with `go install` assumes Kubernetes v1.20 offline; the chart needs the version the cluster runs.


# What the operator calls, resource by resource (docs/operator.md): a rule more is a privilege nobody
# reviewed, a rule less is a 403 at run time.
NAMESPACED_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["podium.dev"], "resources": ["agents", "teams", "orchestrations"],
     "verbs": ["get", "list", "watch", "patch", "update"]},
    {"apiGroups": ["podium.dev"], "resources": ["agents/status", "teams/status", "orchestrations/status"],
     "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["podium.dev"], "resources": ["agents/scale"], "verbs": ["get", "patch"]},
    {"apiGroups": ["podium.dev"], "resources": ["agents/finalizers", "orchestrations/finalizers"],
     "verbs": ["update"]},
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
    {"apiGroups": [""], "resources": ["services", "configmaps", "secrets"],
     "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": ["get", "list", "watch", "patch"]},
]  # fmt: skip
CRD_READ = {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"]}  # fmt: skip
NAMESPACES_READ = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
CLUSTER_ONLY_RULES: list[dict[str, Any]] = [
    CRD_READ,
    NAMESPACES_READ,
    {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["get", "list", "watch", "patch"]},
]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def test_helm_lint_passes_for_default_and_toggled_values() -> None:
    toggles: tuple[list[str], ...] = (
        [],
        ["redis.enabled=false", "redis.url=redis://redis.example:6379/0"],
        ["watchNamespaces={a,b}", "replicaCount=2"],
        ["replicaCount=3", "metrics.serviceMonitor.enabled=true", "redis.persistence.enabled=true"],
    )
    for sets in toggles:
        args = ["lint", str(CHART), "--strict", "--namespace", NAMESPACE, *KUBE]
        for s in sets:
            args += ["--set", s]
        out = helm(*args)
        assert out.returncode == 0, out.stdout + out.stderr


def test_release_named_podium_is_not_named_twice() -> None:
    docs = render()
    assert one(docs, "Deployment")["metadata"]["name"] == "podium"
    assert one(docs, "Service", "podium-redis")
    assert env_of(operator_container(docs))["PODIUM_REDIS_URL"] == "redis://podium-redis.podium-system.svc:6379/0"


def test_every_pod_runs_non_root_with_read_only_root_filesystem() -> None:
    docs = render()
    workloads = find(docs, "Deployment") + find(docs, "StatefulSet")
    assert {w["metadata"]["name"] for w in workloads} == {"podium", "podium-redis"}
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, w["metadata"]["name"]
        assert pod["securityContext"]["runAsUser"] != 0
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]


def test_operator_runs_podium_operator_with_probes_and_redis_password_from_secret() -> None:
    docs = render()
    c = operator_container(docs)
    assert c["command"] == ["podium", "operator"]
    assert "--peering=podium" in c["args"] and "--all-namespaces" in c["args"]
    assert c["readinessProbe"]["httpGet"]["port"] == "health"
    assert c["livenessProbe"]["httpGet"]["port"] == "health"
    secret_ref = env_of(c)["PODIUM_REDIS_PASSWORD"]["secretKeyRef"]
    secret = one(docs, "Secret", secret_ref["name"])
    assert secret_ref["key"] in secret["data"]
    redis = one(docs, "StatefulSet", "podium-redis")["spec"]["template"]["spec"]["containers"][0]
    assert redis["command"] == ["redis-server"]
    assert "$(REDIS_PASSWORD)" in redis["args"] and "$(POD_IP)" in redis["args"]


def test_cluster_wide_rbac_is_exactly_what_the_operator_touches() -> None:
    docs = render()
    role = one(docs, "ClusterRole")
    assert as_set(role["rules"]) == as_set(NAMESPACED_RULES + CLUSTER_ONLY_RULES)
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "podium", "namespace": NAMESPACE}]
    assert not find(docs, "Role") and not find(docs, "RoleBinding")


def test_watch_namespaces_gives_one_role_per_namespace_and_only_discovery_cluster_wide() -> None:
    docs = render("watchNamespaces={team-a,team-b}")
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for r in roles:
        assert as_set(r["rules"]) == as_set(NAMESPACED_RULES)
    assert sorted(b["metadata"]["namespace"] for b in find(docs, "RoleBinding")) == ["team-a", "team-b"]
    cluster_roles = find(docs, "ClusterRole")
    assert len(cluster_roles) == 1 and as_set(cluster_roles[0]["rules"]) == as_set([CRD_READ, NAMESPACES_READ])
    args = operator_container(docs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args


def test_external_redis_replaces_the_builtin_one() -> None:
    docs = render("redis.enabled=false", "redis.url=redis://redis.example:6379/2")
    assert not find(docs, "StatefulSet") and not find(docs, "Secret") and not find(docs, "Service", "podium-redis")
    env = env_of(operator_container(docs))
    assert env["PODIUM_REDIS_URL"] == "redis://redis.example:6379/2"
    assert "PODIUM_REDIS_PASSWORD" not in env

    with_secret = render("redis.enabled=false", "redis.url=redis://redis.example:6379/2", "redis.existingSecret=ext")
    assert env_of(operator_container(with_secret))["PODIUM_REDIS_PASSWORD"]["secretKeyRef"]["name"] == "ext"


def test_external_redis_without_url_is_refused_with_the_fix() -> None:
    out = helm("template", "podium", str(CHART), *KUBE, "--set", "redis.enabled=false")
    assert out.returncode != 0
    assert "redis.url" in out.stderr


def test_one_replica_peers_too_so_a_second_one_stands_by() -> None:
    # `kubectl scale deployment podium --replicas=2` (or a rolling update's surge pod) keeps the chart's args: with
    # --standalone both replicas would reconcile every Agent.
    for values in ((), ("replicaCount=2",)):
        args = operator_container(render(*values))["args"]
        assert "--peering=podium" in args and "--standalone" not in args
    assert "--standalone" in operator_container(render("peering.enabled=false"))["args"]
    refused = helm("template", "podium", str(CHART), *KUBE, "--set", "peering.enabled=false", "--set", "replicaCount=2")
    assert refused.returncode != 0 and "peering.enabled" in refused.stderr


def test_every_replica_is_named_for_its_run_leases_and_gets_the_lease_length() -> None:
    env = {e["name"]: e for e in operator_container(render("replicaCount=2", "runLeaseSeconds=9"))["env"]}
    assert env["PODIUM_RUN_LEASE_SECONDS"]["value"] == "9"
    assert env["PODIUM_REPLICA"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # kopf's peer identity
    refused = helm("template", "podium", str(CHART), *KUBE, "--set", "runLeaseSeconds=0")
    assert refused.returncode != 0 and "runLeaseSeconds" in refused.stderr


def test_chart_crds_are_identical_to_the_generated_ones() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    in_chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    # The chart also carries kopf's peering CRDs, which are kopf's, not generated from Podium's models.
    assert generated and in_chart.keys() == generated.keys() | {"kopf-peering.yaml"}
    for name, body in generated.items():
        assert in_chart[name] == body, f"charts/podium/crds/{name} differs from crds/{name}: run `make crds`"
    rendered = {d["metadata"]["name"] for d in find(render(), "CustomResourceDefinition")}
    assert rendered == {
        "agents.podium.dev",
        "teams.podium.dev",
        "orchestrations.podium.dev",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }


def test_replicas_get_the_peering_object_they_elect_through() -> None:
    assert not find(render("peering.enabled=false"), "ClusterKopfPeering")
    cluster_wide = one(render(), "ClusterKopfPeering")
    assert cluster_wide["metadata"]["name"] == "podium"
    namespaced = find(render("replicaCount=2", "watchNamespaces={a,b}"), "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in namespaced) == ["a", "b"]
    assert {p["metadata"]["name"] for p in namespaced} == {"podium"}


def test_service_monitor_selects_the_metrics_service_only_when_asked() -> None:
    assert not find(render(), "ServiceMonitor")
    docs = render("metrics.serviceMonitor.enabled=true")
    service = one(docs, "Service", "podium-metrics")
    selector = one(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
