"""Podium installed with Helm on the local cluster: the operator runs as a pod, reconciles an Agent into an agent
pod that reaches the chart's Redis by its Service name, runs a pipeline Orchestration to Succeeded, and
`helm uninstall` takes the operator away.

Each run installs its own release into its own namespaces, watching only its own workload namespace, so it can
share the cluster with other tests (and a demo) without reconciling their Agents.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..cluster.helpers import helm
from .conftest import ClusterHandle
from .helpers import (
    CHART,
    Release,
    agent_manifest,
    cluster_wide_operators,
    diagnose,
    get,
    pipeline_manifest,
    ready,
    wait_for,
)


@pytest.fixture(scope="module")
def release(cluster: ClusterHandle) -> Iterator[Release]:
    others = cluster_wide_operators(cluster)
    if others:
        pytest.fail(f"a cluster-wide Podium runs ({', '.join(others)}; `make demo` leaves one): helm uninstall it")
    suffix = uuid.uuid4().hex[:6]
    rel = Release(name=f"podium-e2e-{suffix}", system=f"podium-e2e-{suffix}-system", namespace=f"e2e-{suffix}")
    assert cluster.kubectl("create", "namespace", rel.namespace).returncode == 0
    installed = helm(
        cluster,
        "install", rel.name, str(CHART),
        "--namespace", rel.system, "--create-namespace",
        "--set", f"watchNamespaces={{{rel.namespace}}}",
        "--set", "heartbeatLeaseSeconds=5",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        if installed.returncode != 0:
            pytest.fail(f"helm install failed: {installed.stderr}\n{diagnose(cluster, rel)}")
        yield rel
    finally:
        helm(cluster, "uninstall", rel.name, "--namespace", rel.system, "--wait", "--timeout", "60s")
        # Without its operator nothing removes the podium.dev finalizers: the namespace would hang in Terminating.
        for kind in ("orchestrations", "agents"):
            for obj in cluster.kubectl("get", kind, "-n", rel.namespace, "-o", "name").stdout.split():
                patch = '{"metadata":{"finalizers":null}}'
                cluster.kubectl("patch", obj, "-n", rel.namespace, "--type=merge", "-p", patch)
        cluster.kubectl("delete", "namespace", rel.namespace, rel.system, "--wait=false")


def test_operator_and_redis_run_as_ready_pods(cluster: ClusterHandle, release: Release) -> None:
    pods = get(cluster, "pods", "-n", release.system)
    assert pods is not None
    by_component = {p["metadata"]["labels"].get("app.kubernetes.io/component"): p for p in pods["items"]}
    operator, redis_pod = by_component["operator"], by_component["redis"]
    assert ready(operator) and ready(redis_pod), diagnose(cluster, release)
    assert operator["spec"]["serviceAccountName"] == release.name
    assert operator["spec"]["containers"][0]["command"] == ["podium", "operator"]
    # The node runs Debian's redis-server bound to the pod's own loopback address.
    assert redis_pod["spec"]["containers"][0]["command"] == ["redis-server"]
    pod_ip = ipaddress.ip_address(redis_pod["status"]["podIP"])
    assert pod_ip.is_loopback and str(pod_ip) != "127.0.0.1"


def test_redis_requires_the_generated_password_on_pod_ip_and_service(cluster: ClusterHandle, release: Release) -> None:
    secret = get(cluster, "secret", f"{release.name}-redis", "-n", release.system)
    assert secret is not None
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 32
    pod = get(cluster, "pod", f"{release.name}-redis-0", "-n", release.system)
    service = get(cluster, "service", f"{release.name}-redis", "-n", release.system)
    assert pod is not None and service is not None
    for host in (pod["status"]["podIP"], service["spec"]["clusterIP"]):
        # No retries: redis-py counts an authentication failure as a connection error and would back off.
        anonymous = redis.Redis(host=host, port=6379, socket_timeout=5, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        admin = redis.Redis(host=host, port=6379, password=password, socket_timeout=5)
        assert admin.ping() is True
        admin.close()


def test_in_cluster_operator_runs_an_agent_and_a_pipeline_to_succeeded(
    cluster: ClusterHandle, release: Release
) -> None:
    ns = release.namespace
    docs = yaml.safe_dump_all([agent_manifest(ns), pipeline_manifest(ns)])
    applied = cluster.kubectl("apply", "-f", "-", input=docs)
    assert applied.returncode == 0, applied.stderr

    def agent_ready() -> bool:
        agent = get(cluster, "agent", "writer", "-n", ns) or {}
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in agent.get("status", {}).get("conditions", [])
        )

    try:
        wait_for("Agent writer Ready", agent_ready, timeout=120)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnose(cluster, release)}") from None

    # The agent pod dials the chart's Redis by Service name, with its own ACL user (not the operator's password).
    pods = get(cluster, "pods", "-n", ns, "-l", "app.kubernetes.io/instance=writer") or {"items": []}
    assert pods["items"], diagnose(cluster, release)
    env = {e["name"]: e for e in pods["items"][0]["spec"]["containers"][0]["env"]}
    assert env["PODIUM_REDIS_URL"]["value"] == f"redis://{release.name}-redis.{release.system}.svc:6379/0"
    assert env["PODIUM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] != f"{release.name}-redis"

    def finished() -> dict[str, Any] | None:
        status = (get(cluster, "orchestration", "notes", "-n", ns) or {}).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    try:
        status = wait_for("Orchestration notes to finish", finished, timeout=150)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnose(cluster, release)}") from None
    assert status["phase"] == "Succeeded", f"{status}\n{diagnose(cluster, release)}"
    assert status.get("progress") == "2/2"
    result = status.get("result")
    assert isinstance(result, dict) and "summary" in json.dumps(result), status


def test_metrics_service_serves_the_operator_metrics(cluster: ClusterHandle, release: Release) -> None:
    service = get(cluster, "service", f"{release.name}-metrics", "-n", release.system)
    assert service is not None
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    reconciles = [line for line in body.splitlines() if line.startswith("podium_operator_reconciles_total{")]
    assert any(float(line.rsplit(" ", 1)[1]) >= 1 for line in reconciles), reconciles
    # The pipeline of the test before this one ended Succeeded: it is counted, with its duration.
    runs = [line for line in body.splitlines() if line.startswith("podium_orchestrations_finished_total{")]
    counted = [line for line in runs if 'strategy="pipeline"' in line and 'phase="Succeeded"' in line]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1, runs
    assert any(
        line.startswith('podium_orchestration_duration_seconds_count{phase="Succeeded",strategy="pipeline"}')
        for line in body.splitlines()
    ), body


def test_helm_upgrade_keeps_the_redis_password_and_the_agent_running(cluster: ClusterHandle, release: Release) -> None:
    def password() -> str:
        secret = get(cluster, "secret", f"{release.name}-redis", "-n", release.system)
        assert secret is not None
        return str(secret["data"]["password"])

    before = password()
    upgraded = helm(
        cluster, "upgrade", release.name, str(CHART), "--namespace", release.system,
        "--reuse-values", "--set", "logFormat=text", "--wait", "--timeout", "180s",
    )  # fmt: skip
    assert upgraded.returncode == 0, f"{upgraded.stderr}\n{diagnose(cluster, release)}"
    assert password() == before
    deployment = get(cluster, "deployment", release.name, "-n", release.system)
    assert deployment is not None
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PODIUM_LOG_FORMAT"] == "text"
    # The new operator pod picks the Agent up again and finds it healthy.
    agent = get(cluster, "agent", "writer", "-n", release.namespace) or {}
    assert agent.get("status", {}).get("phase") in ("Ready", "Busy"), agent.get("status")


def test_operator_cleans_up_deleted_agents_then_helm_uninstall_removes_it(
    cluster: ClusterHandle, release: Release
) -> None:
    # Delete the workload while the operator runs: its finalizers drop the agent's Redis user and the run's keys.
    deleted = cluster.kubectl(
        "delete", "orchestrations,agents", "--all", "-n", release.namespace, "--wait=true", "--timeout=90s"
    )
    assert deleted.returncode == 0, f"{deleted.stderr}\n{diagnose(cluster, release)}"
    assert cluster.kubectl("get", "agents", "-n", release.namespace, "-o", "name").stdout.strip() == ""

    out = helm(cluster, "uninstall", release.name, "--namespace", release.system, "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stderr
    assert get(cluster, "deployment", release.name, "-n", release.system) is None
    assert get(cluster, "statefulset", f"{release.name}-redis", "-n", release.system) is None
    assert get(cluster, "clusterrole", f"{release.name}-crds") is None

    def operator_pods_gone() -> bool:
        pods = get(cluster, "pods", "-n", release.system, "-l", "app.kubernetes.io/component=operator")
        return pods is not None and not pods["items"]

    wait_for("the operator pod to go", operator_pods_gone, timeout=60)
    # CRDs stay (Helm never deletes them), so users' Agents and Orchestrations survive an uninstall.
    assert get(cluster, "crd", "agents.podium.dev") is not None


def test_operator_without_redis_stays_unready_and_says_why(cluster: ClusterHandle) -> None:
    suffix = uuid.uuid4().hex[:6]
    name, system = f"podium-nored-{suffix}", f"podium-nored-{suffix}"
    installed = helm(
        cluster, "install", name, str(CHART), "--namespace", system, "--create-namespace",
        "--set", "redis.enabled=false", "--set", "redis.url=redis://127.0.0.1:1/0",
        "--set", f"watchNamespaces={{{system}}}", "--set", "logFormat=text",
    )  # fmt: skip
    try:
        assert installed.returncode == 0, installed.stderr

        def complaint() -> str | None:
            log = cluster.kubectl("-n", system, "logs", f"deploy/{name}", "--tail=20").stdout
            return log if "not reachable yet" in log else None

        log = wait_for("the operator to report Redis unreachable", complaint, timeout=60)
        assert "redis://127.0.0.1:1/0" in log
        pods = get(cluster, "pods", "-n", system) or {"items": []}
        assert pods["items"] and not any(ready(p) for p in pods["items"])
    finally:
        helm(cluster, "uninstall", name, "--namespace", system, "--wait", "--timeout", "60s")
        cluster.kubectl("delete", "namespace", system, "--wait=false")


def test_a_second_replica_stands_by_and_takes_over_when_the_first_goes(cluster: ClusterHandle) -> None:
    if cluster_wide_operators(cluster):
        pytest.fail("a cluster-wide Podium runs: helm uninstall it")
    suffix = uuid.uuid4().hex[:6]
    name, system, ns = f"podium-ha-{suffix}", f"podium-ha-{suffix}-system", f"ha-{suffix}"
    assert cluster.kubectl("create", "namespace", ns).returncode == 0
    # Installed with one replica and scaled by hand, as a user (or an HPA) would: the chart's args must make the
    # second replica a standby, not a second operator reconciling the same Agents.
    installed = helm(
        cluster, "install", name, str(CHART), "--namespace", system, "--create-namespace",
        "--set", f"watchNamespaces={{{ns}}}", "--set", "logFormat=text", "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        assert installed.returncode == 0, installed.stderr
        assert cluster.kubectl("-n", system, "scale", f"deployment/{name}", "--replicas=2").returncode == 0

        def operator_pods() -> list[str]:
            pods = get(cluster, "pods", "-n", system, "-l", "app.kubernetes.io/component=operator") or {"items": []}
            return [
                p["metadata"]["name"] for p in pods["items"] if ready(p) and "deletionTimestamp" not in p["metadata"]
            ]

        def working(pod: str) -> bool:
            # kopf starts paused and logs only transitions: the active replica's last word is "Resuming".
            peering = [
                line
                for line in cluster.kubectl("-n", system, "logs", pod).stdout.splitlines()
                if "Pausing operations" in line or "Resuming operations" in line
            ]
            return bool(peering) and "Resuming operations" in peering[-1]

        def agent_ready(agent: str) -> bool:
            body = get(cluster, "agent", agent, "-n", ns) or {}
            return body.get("status", {}).get("phase") == "Ready"

        def one_active() -> str | None:
            pods = operator_pods()
            active = [p for p in pods if working(p)]
            return active[0] if len(pods) == 2 and len(active) == 1 else None

        first = wait_for("one active replica and one standby", one_active, timeout=60)
        manifest = agent_manifest(ns)
        assert cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest)).returncode == 0
        wait_for("Agent writer Ready", lambda: agent_ready("writer"), timeout=90)

        assert cluster.kubectl("-n", system, "delete", "pod", first, "--wait=true").returncode == 0
        manifest["metadata"]["name"] = "writer2"
        assert cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest)).returncode == 0
        wait_for("Agent writer2 Ready after the active replica went", lambda: agent_ready("writer2"), timeout=90)
        second = wait_for("one active replica again", one_active, timeout=60)
        assert second != first
    finally:
        for agent in ("writer", "writer2"):
            cluster.kubectl("-n", ns, "delete", "agent", agent, "--ignore-not-found", "--timeout=60s")
        helm(cluster, "uninstall", name, "--namespace", system, "--wait", "--timeout", "60s")
        cluster.kubectl("delete", "namespace", ns, system, "--wait=false")
