"""The rendered chart and examples/ against the Kubernetes schemas with kubeconform, offline: the schemas are made from
the local API server's OpenAPI (scripts/kube-schemas.py, through scripts/chart-check.sh) and the CRD files; once made,
the check needs no cluster."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]


def chart_check(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "chart-check.sh"), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def schemas(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Schemas made afresh from this cluster's API server (not the user's cache), by the first check."""
    where = tmp_path_factory.mktemp("kube-schemas") / "v1.34.4"
    env = {
        **os.environ,
        **cluster.env,
        "PODIUM_KUBE_SCHEMAS": str(where),
        "PODIUM_KUBECTL": str(cluster.bin / "kubectl"),
    }
    made = chart_check(env)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (where / "_definitions.json").is_file() and (where / "deployment-apps-v1.json").is_file()
    return where


def offline(schemas: Path) -> dict[str, str]:
    # No KUBECONFIG that reaches anything: the check must need only the cached schemas.
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return {**env, "KUBECONFIG": "/nonexistent", "PODIUM_KUBE_SCHEMAS": str(schemas)}


def test_every_values_combination_and_every_example_is_valid_offline(schemas: Path) -> None:
    out = chart_check(offline(schemas))
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    assert "Invalid: 0, Errors: 0" in summary, out.stdout
    # The ci/ values files and examples/: Deployments, RBAC, NetworkPolicies, the helm test Pod, Agents, ...
    found = int(summary.split(" resources found")[0].rsplit(" ", 1)[1])
    assert found >= 90, summary


def test_a_misspelt_field_or_a_bad_agent_fails_the_check(schemas: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
        "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: i, imagePullPolice: Always}]}\n"
        "---\napiVersion: podium.dev/v1alpha1\nkind: Agent\nmetadata: {name: a}\n"
        "spec: {role: r, backend: {command: {args: [x]}}, replicaz: 2}\n"
    )
    out = chart_check(offline(schemas), str(bad))
    assert out.returncode != 0
    assert (
        "Deployment d is invalid" in out.stdout and "additional properties 'imagePullPolice' not allowed" in out.stdout
    )
    assert "Agent a is invalid" in out.stdout and "additional properties 'replicaz' not allowed" in out.stdout


def test_without_schemas_or_a_cluster_it_says_how_to_make_them(tmp_path: Path) -> None:
    out = chart_check(offline(tmp_path / "none"))
    assert out.returncode != 0
    assert "no cached schemas" in out.stderr and "make cluster-up" in out.stderr
