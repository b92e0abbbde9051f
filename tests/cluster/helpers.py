"""Helpers shared by the cluster test modules that run `podium operator` as a process against the local cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.client.exceptions import ApiException

from podium_localcluster.redis_server import RedisServer, free_port

if TYPE_CHECKING:  # conftest imports this module for its fixtures
    from .conftest import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
PODIUM = str(Path(sys.executable).parent / "podium")
PY = "python"  # what the node's pods run: the node puts its own venv first on their PATH
# Waits on the node's pods: objects read before the node or a controller made them are "not yet", not failures.
NODE_WAIT: dict[str, Any] = {"timeout": 90.0, "ignore": (ApiException,)}


class Operator:
    """One `podium operator` process watching one namespace (`--standalone`, or one of several replicas under kopf
    peering `peering` named `replica`); restartable."""

    def __init__(
        self,
        cluster: ClusterHandle,
        namespace: str,
        redis_url: str,
        log: Path,
        *,
        peering: str | None = None,
        replica: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cluster, self.namespace, self.redis_url, self.log = cluster, namespace, redis_url, log
        self.peering, self.replica = peering, replica
        self.extra_env = dict(env or {})  # more variables for the process (e.g. tracing's OTEL_*)
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **self.cluster.env,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "PODIUM_REDIS_URL": self.redis_url,
            "PODIUM_HEALTH_INTERVAL_SECONDS": "2",
            "PODIUM_HEARTBEAT_LEASE_SECONDS": "5",
            "PODIUM_STARTUP_GRACE_SECONDS": "15",
            "PODIUM_RESYNC_SECONDS": "10",
            "PODIUM_AGENT_IMAGE": "podium-agent:dev",
            **({"PODIUM_REPLICA": self.replica} if self.replica else {}),
            **self.extra_env,
        }
        mode = [f"--peering={self.peering}", f"--priority={free_port()}"] if self.peering else ["--standalone"]
        args = [PODIUM, "operator", *mode, f"--namespace={self.namespace}"]
        args += [f"--metrics-port={self.metrics_port}", "--metrics-host=127.0.0.1", "--log-format=text"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """kill -9, as a node failure or the OOM killer would: nothing is given up, nothing is flushed."""
        assert self.process is not None, "the operator is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def running_operator(
    cluster: ClusterHandle, ns: str, server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The body of a module's operator fixture (`yield from` it): started, yielded, stopped, log shown on request."""
    op = Operator(cluster, ns, server.url, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
    if os.environ.get("PODIUM_SHOW_OPERATOR_LOG"):
        print(op.log.read_text()[-20000:])


def apply_crds(cluster: ClusterHandle, *, peering: bool = False) -> None:
    """The project's CRDs (and with ``peering`` kopf's KopfPeering CRD, as the chart installs it), Established."""
    files = [*CRDS, ROOT / "charts" / "podium" / "crds" / "kopf-peering.yaml"] if peering else CRDS
    applied = cluster.kubectl("apply", "--server-side", "--force-conflicts", *(f"-f={p}" for p in files))
    assert applied.returncode == 0, applied.stderr
    ok = cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/agents.podium.dev")
    assert ok.returncode == 0, ok.stderr


def module_namespace(cluster: ClusterHandle, prefix: str) -> Iterator[str]:
    """The body of a module's namespace fixture (`yield from` it): created, yielded, deleted without waiting."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    assert cluster.kubectl("create", "namespace", name).returncode == 0
    yield name
    delete_namespace_without_operator(cluster, name)  # the module's operator stopped before this


def delete_namespace_without_operator(cluster: ClusterHandle, ns: str) -> None:
    """Delete a namespace whose operator has stopped: its Agents', Teams' and Orchestrations' finalizers are dropped (no
    operator will honour them), so it does not stay Terminating, relisted by the namespace controller for the rest of
    the run (a cluster kept between runs had dozens of them, and the thousands of objects of a scale test)."""
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    names = cluster.kubectl("get", "agents,teams,orchestrations", "-n", ns, "-o", "name").stdout.split()
    for start in range(0, len(names), 100):
        cluster.kubectl(
            "patch", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', *names[start : start + 100]
        )


def helm(cluster: ClusterHandle, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    # The cluster's bin/ symlink, or the cached build it points to (the symlink is rewritten by every `up`).
    binary = cluster.bin / "helm"
    if not binary.exists():
        binary = Path.home() / ".cache" / "podium" / "k8s-v1.34.4" / "bin" / "helm"
    return subprocess.run(
        [str(binary), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cluster.env,
        check=False,
    )


def has_ready_node(cluster: ClusterHandle) -> bool:
    out = cluster.kubectl("get", "nodes", "-o", "json")
    if out.returncode != 0:
        return False
    for node in json.loads(out.stdout)["items"]:
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])):
            return True
    return False


def require_ready_node(cluster: ClusterHandle) -> None:
    """Fail (never skip) a test that needs agent pods when the node is not Ready: a skip would hide it."""
    if not has_ready_node(cluster):
        pytest.fail("the local cluster has no Ready node to run agent pods: see .podium-test/logs/node.log")


def agent(name: str, replicas: int = 1, **spec: Any) -> dict[str, Any]:
    """An echo Agent (team q) running `cat`; `spec` overrides or adds spec fields."""
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "labels": {"team": "q"}},
        "spec": {
            "role": "echo",
            # capabilities given: the CRD's uniqueness rule currently fails when the list is absent
            "capabilities": [{"name": "echo"}],
            "backend": {"command": {"args": ["cat"]}},
            "replicas": replicas,
            **spec,
        },
    }


def apply(cluster: ClusterHandle, ns: str, manifest: dict[str, Any]) -> None:
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    assert out.returncode == 0, out.stderr


def get(cluster: ClusterHandle, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", "-n", ns, kind, name, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else None


def status_of(cluster: ClusterHandle, ns: str, kind: str, name: str) -> dict[str, Any]:
    obj = get(cluster, ns, kind, name) or {}
    status: dict[str, Any] = obj.get("status") or {}
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})
