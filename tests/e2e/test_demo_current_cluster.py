"""`PODIUM_CLUSTER=current make demo` on a cluster the user already has: here the tests' local cluster, started
separately and handed over only through KUBECONFIG, as if it were an external one. The demo must install Podium and
run every example there without starting a cluster of its own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from ..cluster.helpers import helm
from .conftest import ClusterHandle
from .helpers import ROOT, cluster_wide_operators, get


def local_cluster_state() -> tuple[bool, float]:
    state = ROOT / ".podium" / "state.json"
    return state.exists(), state.stat().st_mtime if state.exists() else 0.0


def test_the_demo_installs_and_runs_on_the_current_kube_context(cluster: ClusterHandle) -> None:
    if cluster_wide_operators(cluster) or get(cluster, "namespace", "podium-system") is not None:
        pytest.fail("a Podium release already runs in podium-system (`make demo` leaves one): helm uninstall it")
    ns = f"demo-current-{uuid.uuid4().hex[:6]}"
    before = local_cluster_state()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")},
        "KUBECONFIG": str(cluster.kubeconfig),
        # Its kubectl and helm first: a user with a cluster has their own (the demo then builds no Kubernetes).
        "PATH": f"{cluster.bin}:{os.environ['PATH']}",
        "PODIUM_CLUSTER": "current",
        "PODIUM_SKIP_MODEL_BUILD": "1",
        "DEMO_NAMESPACE": ns,
        "DEMO_DEADLINE": "600",
    }
    try:
        demo = subprocess.run(
            ["bash", str(ROOT / "scripts" / "demo.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            cwd=ROOT,
            check=False,
        )
        out = demo.stdout + demo.stderr
        assert demo.returncode == 0, out[-6000:]
        assert "the current kube-context (PODIUM_CLUSTER=current: no cluster is started)" in out
        assert "local cluster" not in out and "podium-cluster up" not in out
        assert "demo done in" in out
        # Every example's Orchestration ran to Succeeded on that cluster.
        runs = get(cluster, "orchestrations", "-n", ns) or {"items": []}
        phases = {r["metadata"]["name"]: r.get("status", {}).get("phase") for r in runs["items"]}
        assert len(phases) == 7 and set(phases.values()) == {"Succeeded"}, phases
        # ... and it was this cluster's: no local cluster was started or touched.
        assert local_cluster_state() == before
    finally:
        # Its Agents and runs first, while the operator still removes their finalizers; then the release, even if
        # that took too long (a cluster-wide release left behind would fail every test after this one).
        with contextlib.suppress(subprocess.TimeoutExpired):
            cluster.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", timeout=150)
        helm(cluster, "uninstall", "podium", "--namespace", "podium-system", "--wait", "--timeout", "60s")
        cluster.kubectl("delete", "namespace", "podium-system", "--wait=false")


def test_an_unknown_cluster_choice_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PODIUM_CLUSTER": "minikube"},
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 2
    assert "PODIUM_CLUSTER=minikube: expected local, current or kind" in out.stderr
