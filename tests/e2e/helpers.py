"""What the Helm e2e modules share: a release, its manifests, and waiting on the cluster."""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from podium_localcluster.modelserver import ModelServerMissing, local_chart_values, locate
from tests.support.wait import wait_for as poll

from ..cluster.helpers import helm
from .conftest import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]


CHART = ROOT / "charts" / "podium"


@dataclass
class Release:
    name: str
    system: str  # where the operator and Redis run
    namespace: str  # where the Agents and Orchestrations live

    @property
    def model_url(self) -> str:
        """The chart's model server (with modelServer.enabled) as an llm Agent's baseURL."""
        return f"http://{self.name}-model-server.{self.system}.svc:8080/v1"


# Helm installs and pods starting take tens of seconds: poll once a second, not the cluster tests' twice.
wait_for = functools.partial(poll, every=1.0)


def get(cluster: ClusterHandle, *args: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", *args, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else None


def diagnose(cluster: ClusterHandle, release: Release) -> str:
    """What a person would look at first when the install or a run does not come up."""
    parts = []
    for ns in (release.system, release.namespace):
        parts.append(cluster.kubectl("-n", ns, "get", "pods,agents,orchestrations", "-o", "wide").stdout)
        parts.append(cluster.kubectl("-n", ns, "describe", "pods").stdout[-3000:])
    parts.append(cluster.kubectl("-n", release.system, "logs", f"deploy/{release.name}", "--tail=60").stdout)
    return "\n".join(parts)


def cluster_wide_operators(cluster: ClusterHandle) -> list[str]:
    """Podium operators already watching every namespace: they would reconcile this test's Agents too."""
    found = get(cluster, "deployments", "-A", "-l", "app.kubernetes.io/name=podium") or {"items": []}
    return [
        f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in found["items"]
        if "--all-namespaces" in d["spec"]["template"]["spec"]["containers"][0].get("args", [])
    ]


@contextlib.contextmanager
def installed(cluster: ClusterHandle, prefix: str, *helm_args: str) -> Iterator[Release]:
    """A release of the chart of its own (``podium-<prefix>-<suffix>``) whose operator watches only its own workload
    namespace (``<prefix>-<suffix>``), so it shares the cluster with other tests without reconciling their Agents;
    uninstalled with everything in it at the end."""
    others = cluster_wide_operators(cluster)
    if others:
        pytest.fail(f"a cluster-wide Podium runs ({', '.join(others)}; `make demo` leaves one): helm uninstall it")
    suffix = uuid.uuid4().hex[:6]
    rel = Release(
        name=f"podium-{prefix}-{suffix}", system=f"podium-{prefix}-{suffix}-system", namespace=f"{prefix}-{suffix}"
    )
    assert cluster.kubectl("create", "namespace", rel.namespace).returncode == 0
    done = helm(
        cluster,
        "install", rel.name, str(CHART), "--namespace", rel.system, "--create-namespace",
        "--set", f"watchNamespaces={{{rel.namespace}}}",
        "--set", "heartbeatLeaseSeconds=5",
        *helm_args,
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        if done.returncode != 0:
            pytest.fail(f"helm install failed: {done.stderr}\n{diagnose(cluster, rel)}")
        yield rel
    finally:
        # While the operator still runs: its finalizers clean up the Agents' Redis users and the runs' keys (a
        # dozen Agents on a busy machine take a while; the uninstall goes ahead either way).
        with contextlib.suppress(subprocess.TimeoutExpired):
            cluster.kubectl(
                "delete", "orchestrations,agents", "--all", "-n", rel.namespace, "--wait=true", "--timeout=150s",
                timeout=170,
            )  # fmt: skip
        helm(cluster, "uninstall", rel.name, "--namespace", rel.system, "--wait", "--timeout", "60s")
        # What is left has podium.dev finalizers no operator will remove now: the namespace would hang Terminating.
        no_finalizers = '{"metadata":{"finalizers":null}}'
        for kind in ("orchestrations", "agents"):
            for obj in cluster.kubectl("get", kind, "-n", rel.namespace, "-o", "name").stdout.split():
                cluster.kubectl("patch", obj, "-n", rel.namespace, "--type=merge", "-p", no_finalizers)
        cluster.kubectl("delete", "namespace", rel.namespace, rel.system, "--wait=false")


@contextlib.contextmanager
def installed_with_model_server(cluster: ClusterHandle, prefix: str, workdir: Path) -> Iterator[Release]:
    """:func:`installed` with the chart's model server (llama-server and the model `make setup` built)."""
    try:
        files = locate()
    except ModelServerMissing as e:
        pytest.fail(str(e))
    values = workdir / "model-server.json"
    values.write_text(json.dumps(local_chart_values(files)))
    with installed(cluster, prefix, "-f", str(values)) as rel:
        yield rel


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def agent_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "writer", "namespace": namespace, "labels": {"team": "e2e"}},
        "spec": {
            "role": "documenter",
            "capabilities": [{"name": "writing", "level": 0.8}],
            "backend": {"python": {"entrypoint": "podium.demo.agents:documenter"}},
        },
    }


def pipeline_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Orchestration",
        "metadata": {"name": "notes", "namespace": namespace},
        "spec": {
            "strategy": "pipeline",
            "agentSelector": {"matchLabels": {"team": "e2e"}},
            "input": {"text": "Helm installs the Podium operator and Redis on the local cluster"},
            "pipeline": {
                "stages": [
                    {"name": "draft", "agent": "writer",
                     "validate": {"jsonSchema": {"type": "object", "required": ["summary"]}}},
                    {"name": "polish", "role": "documenter",
                     "validate": {"jsonSchema": {"type": "object", "required": ["title", "summary"]}}},
                ]
            },
            "limits": {"timeoutSeconds": 120, "maxTasks": 10},
        },
    }  # fmt: skip
