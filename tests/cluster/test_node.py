"""`podium node` on the local cluster: real scheduler, controllers and API server; pods are local processes."""

from __future__ import annotations

import os
import urllib.request
from typing import Any, TypeVar

import pytest
from kubernetes import client

from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import NODE_WAIT, PY, apply

T = TypeVar("T")


def pid_of(status: client.V1ContainerStatus) -> int:
    assert status.container_id and status.container_id.startswith("podium://"), status.container_id
    return int(status.container_id.removeprefix("podium://"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def web_deployment(name: str, replicas: int = 2, liveness_path: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web",
        "image": "python:3.12",  # ignored by the node: the command runs from the node's PATH
        "command": [PY, "-m", "http.server", "8000"],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    if liveness_path:
        container["livenessProbe"] = {
            "httpGet": {"path": liveness_path, "port": 8000},
            "initialDelaySeconds": 1,
            "periodSeconds": 1,
            "failureThreshold": 2,
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }


def job(name: str, script: str, sa: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "python:3.12", "command": [PY, "-c", script]}],
    }
    if sa:
        spec["serviceAccountName"] = sa
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }


def job_condition(batch: client.BatchV1Api, ns: str, name: str) -> str | None:
    j = batch.read_namespaced_job(name, ns)
    for c in j.status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return None


def running_pods(core: client.CoreV1Api, ns: str, selector: str, n: int) -> list[client.V1Pod] | None:
    pods = [p for p in core.list_namespaced_pod(ns, label_selector=selector).items if not p.metadata.deletion_timestamp]
    ready = [p for p in pods if p.status.container_statuses and all(c.ready for c in p.status.container_statuses)]
    return ready if len(ready) == n else None


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


@pytest.fixture
def batch(kube_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(kube_client)


def test_deployment_becomes_available_with_distinct_pod_ips(
    cluster: ClusterHandle, namespace: str, kube_client: client.ApiClient, core: client.CoreV1Api
) -> None:
    apply(cluster, namespace, web_deployment("web"))
    apps = client.AppsV1Api(kube_client)

    def available() -> bool:
        d = apps.read_namespaced_deployment("web", namespace)
        return any(c.type == "Available" and c.status == "True" for c in d.status.conditions or []) and (
            d.status.ready_replicas == 2
        )

    wait_for("deployment Available with 2 ready replicas", available, **NODE_WAIT)
    pods = wait_for("2 ready pods", lambda: running_pods(core, namespace, "app=web", 2), **NODE_WAIT)
    ips = {p.status.pod_ip for p in pods}
    assert len(ips) == 2 and all(ip.startswith("127.") for ip in ips)
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:8000/", timeout=5) as r:
            assert r.status == 200
    # Logs come through the API server from the node's kubelet endpoint.
    logs = cluster.kubectl("logs", "-n", namespace, pods[0].metadata.name)
    assert logs.returncode == 0, logs.stderr
    assert '"GET / HTTP/1.1" 200' in logs.stdout

    # Killing a container's process: the node restarts it.
    pod = pods[0]
    pid = pid_of(pod.status.container_statuses[0])
    os.kill(pid, 9)

    def restarted() -> client.V1Pod | None:
        p = core.read_namespaced_pod(pod.metadata.name, namespace)
        cs = p.status.container_statuses[0]
        return p if cs.restart_count >= 1 and cs.state.running and cs.ready else None

    again = wait_for("container restarted after kill", restarted, **NODE_WAIT)
    assert pid_of(again.status.container_statuses[0]) != pid
    assert again.status.container_statuses[0].last_state.terminated.exit_code == 137

    # Deleting the Deployment ends every pod and its processes.
    pids = [pid_of(p.status.container_statuses[0]) for p in running_pods(core, namespace, "app=web", 2) or []]
    assert len(pids) == 2
    out = cluster.kubectl("delete", "deployment", "web", "-n", namespace)
    assert out.returncode == 0, out.stderr
    wait_for(
        "pods gone",
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
        **NODE_WAIT,
    )
    wait_for("processes gone", lambda: not any(alive(p) for p in pids), timeout=15, ignore=NODE_WAIT["ignore"])


def test_failing_liveness_probe_restarts_container(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api
) -> None:
    apply(cluster, namespace, web_deployment("sick", replicas=1, liveness_path="/no-such-page"))

    def restarted() -> int | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=sick").items
        counts = [p.status.container_statuses[0].restart_count for p in pods if p.status.container_statuses]
        return max(counts) if counts and max(counts) >= 1 else None

    assert wait_for("liveness restart", restarted, **NODE_WAIT) >= 1


def test_pod_reaches_service_by_name_and_uses_in_cluster_rbac(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    apply(cluster, namespace, web_deployment("backend", replicas=1))
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "backend"},
            "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    wait_for("backend ready", lambda: running_pods(core, namespace, "app=backend", 1), **NODE_WAIT)
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "role", "reader", "--verb=list", "--resource=pods", "-n", namespace)
    cluster.kubectl(
        "create", "rolebinding", "reader", "--role=reader", f"--serviceaccount={namespace}:reader", "-n", namespace
    )
    script = f"""
import sys, urllib.request
from kubernetes import client, config
body = urllib.request.urlopen("http://backend/", timeout=10).read()
assert b"Directory listing" in body, body[:200]
config.load_incluster_config()
v1 = client.CoreV1Api()
names = [p.metadata.name for p in v1.list_namespaced_pod("{namespace}").items]
assert any(n.startswith("backend-") for n in names), names
try:
    v1.list_namespaced_secret("{namespace}")
    sys.exit("listing secrets should be forbidden")
except client.ApiException as e:
    assert e.status == 403, e.status
print("OK", len(names))
"""
    apply(cluster, namespace, job("client", script, sa="reader"))
    result = wait_for("client job done", lambda: job_condition(batch, namespace, "client"), **NODE_WAIT)
    logs = cluster.kubectl("logs", "-n", namespace, "job/client").stdout
    assert result == "Complete", logs


def test_jobs_succeed_or_fail_with_exit_code(
    namespace: str, cluster: ClusterHandle, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    apply(cluster, namespace, job("ok", "print('done')"))
    apply(cluster, namespace, job("bad", "import sys; sys.exit(3)"))
    assert wait_for("ok job", lambda: job_condition(batch, namespace, "ok"), **NODE_WAIT) == "Complete"
    assert wait_for("bad job", lambda: job_condition(batch, namespace, "bad"), **NODE_WAIT) == "Failed"
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=bad").items[0]
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3
    ok_pod = core.list_namespaced_pod(namespace, label_selector="job-name=ok").items[0]
    assert ok_pod.status.phase == "Succeeded"


def test_missing_program_is_waiting_with_reason(cluster: ClusterHandle, namespace: str, core: client.CoreV1Api) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nope"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["podium-no-such-program"]}]},
    }
    # A bare Pod is refused until the namespace's default ServiceAccount exists (created by a controller).
    wait_for(
        "default serviceaccount",
        lambda: core.read_namespaced_service_account("default", namespace),
        **NODE_WAIT,
    )
    apply(cluster, namespace, pod)

    def waiting() -> client.V1ContainerStateWaiting | None:
        p = core.read_namespaced_pod("nope", namespace)
        cs = p.status.container_statuses
        return (
            cs[0].state.waiting
            if cs and cs[0].state.waiting and cs[0].state.waiting.reason != "ContainerCreating"
            else None
        )

    w = wait_for("waiting reason", waiting, **NODE_WAIT)
    assert w.reason == "ExecutableNotFound"
    assert "podium-no-such-program" in w.message
    assert core.read_namespaced_pod("nope", namespace).status.phase == "Pending"
