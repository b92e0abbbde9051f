"""The chart's run viewer: `podium ui` as a Deployment and Service, read-only RBAC, a read-only Redis user."""

from __future__ import annotations

from typing import Any

import pytest

from podium.viewer.source import ACL_RULES
from tests.support.chart import CHART, KUBE, as_set, env_of, find, helm, helm_is_built, one, render

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)

ON = "viewer.enabled=true"
READ = {"get", "list", "watch"}


def viewer_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = one(docs, "Deployment", "podium-viewer")["spec"]["template"]
    return pod


def redis_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = one(docs, "StatefulSet", "podium-redis")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_viewer_is_off_by_default_and_redis_then_has_no_user_for_it() -> None:
    docs = render()
    assert not [d for d in docs if "viewer" in d["metadata"]["name"]]
    assert "--user" not in redis_container(docs)["args"]


def test_it_runs_podium_ui_for_the_watched_namespaces_with_a_role_in_each_that_only_reads() -> None:
    docs = render(ON, "watchNamespaces={team-a,team-b}")
    pod = viewer_pod(docs)
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["podium", "ui"]
    assert [a for a in container["args"] if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    assert "--address=0.0.0.0" in container["args"] and pod["spec"]["serviceAccountName"] == "podium-viewer"
    roles = find(docs, "Role", "podium-viewer")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert as_set(role["rules"]) == {
            ("podium.dev", "orchestrations", "get"),
            ("podium.dev", "orchestrations", "list"),
            ("", "events", "list"),
        }
    bindings = find(docs, "RoleBinding", "podium-viewer")
    assert {b["subjects"][0]["name"] for b in bindings} == {"podium-viewer"}
    assert not find(docs, "ClusterRole", "podium-viewer")
    # viewer.namespaces narrows what it shows below what the operator watches.
    narrowed = render(ON, "watchNamespaces={team-a,team-b}", "viewer.namespaces={team-b}")
    assert [r["metadata"]["namespace"] for r in find(narrowed, "Role", "podium-viewer")] == ["team-b"]


def test_with_every_namespace_watched_it_serves_all_of_them_with_a_read_only_cluster_role() -> None:
    docs = render(ON)
    assert "--all-namespaces" in viewer_pod(docs)["spec"]["containers"][0]["args"]
    role = one(docs, "ClusterRole", "podium-viewer")
    assert {verb for _, _, verb in as_set(role["rules"])} <= READ
    assert one(docs, "ClusterRoleBinding", "podium-viewer")["roleRef"]["name"] == "podium-viewer"


def test_its_pod_passes_pss_restricted_and_its_service_reaches_its_port() -> None:
    docs = render(ON)
    pod = viewer_pod(docs)
    sc = pod["spec"]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["spec"]["containers"][0]
    csc = container["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False and csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    service = one(docs, "Service", "podium-viewer")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    # The operator's Service does not select the viewer, nor the viewer's the operator.
    operator = one(docs, "Deployment", "podium")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= operator.items()


def test_the_built_in_redis_gets_the_viewers_read_only_user_from_a_secret_the_viewer_logs_in_with() -> None:
    docs = render(ON)
    redis = redis_container(docs)
    args = redis["args"]
    at = args.index("--user")
    assert args[at + 1 : at + 4] == ["podium-viewer", "on", ">$(VIEWER_REDIS_PASSWORD)"]
    assert tuple(args[at + 4 :]) == ACL_RULES  # the rules the code is tested with, in the same order
    secret = one(docs, "Secret", "podium-viewer-redis")
    assert set(secret["data"]) == {"username", "password"}
    assert env_of(redis)["VIEWER_REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "podium-viewer-redis", "key": "password"}
    }
    env = env_of(viewer_pod(docs)["spec"]["containers"][0])
    assert env["PODIUM_REDIS_USERNAME"]["secretKeyRef"] == {"name": "podium-viewer-redis", "key": "username"}
    assert env["PODIUM_REDIS_PASSWORD"]["secretKeyRef"] == {"name": "podium-viewer-redis", "key": "password"}
    assert env["PODIUM_REDIS_URL"] == "redis://podium-redis.podium-system.svc:6379/0"
    # Never the operator's (default user's) password.
    assert "podium-redis" not in {v["secretKeyRef"]["name"] for v in env.values() if isinstance(v, dict)}


def test_with_your_own_redis_it_needs_a_read_only_user_you_made() -> None:
    external = ("redis.enabled=false", "redis.url=redis://redis.example:6379/0")
    out = helm("template", "podium", str(CHART), *KUBE, *(a for s in (*external, ON) for a in ("--set", s)))
    assert out.returncode != 0 and "viewer.redis.existingSecret" in out.stderr
    docs = render(*external, ON, "viewer.redis.existingSecret=ro-user")
    assert not find(docs, "Secret", "podium-viewer-redis")
    env = env_of(viewer_pod(docs)["spec"]["containers"][0])
    assert env["PODIUM_REDIS_USERNAME"]["secretKeyRef"]["name"] == "ro-user"
    assert env["PODIUM_REDIS_URL"] == "redis://redis.example:6379/0"


def test_an_existing_secret_with_the_built_in_redis_is_refused_with_why() -> None:
    out = helm("template", "podium", str(CHART), *KUBE, "--set", ON, "--set", "viewer.redis.existingSecret=ro-user")
    assert out.returncode != 0 and "is for your own Redis" in out.stderr


def test_helm_lint_is_clean_with_the_viewer_and_the_dashboard_on() -> None:
    sets = (ON, "metrics.grafanaDashboard.enabled=true", "watchNamespaces={a}")
    out = helm("lint", str(CHART), "--strict", *KUBE, *(a for s in sets for a in ("--set", s)))
    assert out.returncode == 0, out.stdout + out.stderr
