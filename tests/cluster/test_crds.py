"""Podium's CRDs on a real API server: install, CEL validation messages, short names, printer columns, scale."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
BAD_SPECS: list[dict[str, Any]] = yaml.safe_load((ROOT / "tests/data/bad-specs.yaml").read_text())
API_VERSION = "podium.dev/v1alpha1"

AGENT = {
    "apiVersion": API_VERSION,
    "kind": "Agent",
    "metadata": {"name": "x"},
    "spec": {
        "role": "reviewer",
        "capabilities": [{"name": "python", "level": 0.8}],
        "backend": {"python": {"entrypoint": "podium.demo.agents:reviewer"}},
    },
}


@pytest.fixture(scope="module")
def crds(cluster: ClusterHandle) -> list[str]:
    # Server-side apply: the CRDs are too large for client-side apply's last-applied annotation.
    applied = cluster.kubectl("apply", "--server-side", "--force-conflicts", *(f"-f={p}" for p in CRDS))
    assert applied.returncode == 0, applied.stderr
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in CRDS]
    established = cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
    assert established.returncode == 0, established.stderr
    return names


def apply(cluster: ClusterHandle, manifest: dict[str, Any], namespace: str) -> Any:
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def test_every_project_crd_is_listed(cluster: ClusterHandle, crds: list[str]) -> None:
    out = cluster.kubectl("get", "crd", "-o", "name")
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert {f"customresourcedefinition.apiextensions.k8s.io/{n}" for n in crds} <= listed
    assert {"agents.podium.dev", "teams.podium.dev", "orchestrations.podium.dev"} <= set(crds)


def test_valid_agent_applies_and_shows_in_printer_columns(
    cluster: ClusterHandle, crds: list[str], namespace: str
) -> None:
    out = apply(cluster, AGENT, namespace)
    assert out.returncode == 0, out.stderr
    table = cluster.kubectl("get", "ag", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "ROLE", "READY", "PHASE", "LOAD", "BREAKER", "AGE"]
    assert row.split()[:2] == ["x", "reviewer"]
    wide = cluster.kubectl("get", "agents.podium.dev", "-n", namespace, "-o", "wide")
    assert "PRIORITY" in wide.stdout.splitlines()[0]


# Examples for add-ons this cluster does not run (their CRDs are not installed here).
NOT_SERVED_HERE = ("keda.sh/",)


def test_every_example_is_accepted(cluster: ClusterHandle, crds: list[str], namespace: str) -> None:
    checked = 0
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        served = [d for d in docs if not str(d.get("apiVersion", "")).startswith(NOT_SERVED_HERE)]
        if not served:
            continue
        out = cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(served))
        assert out.returncode == 0, f"{path.relative_to(ROOT)}: {out.stderr}"
        checked += len(served)
    assert checked >= 15, "the examples were not found"


def test_orchestration_short_name_lists_with_columns(cluster: ClusterHandle, crds: list[str], namespace: str) -> None:
    example = ROOT / "examples" / "pipeline.yaml"
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d and d.get("kind") == "Orchestration"]
    assert docs, f"{example} has no Orchestration"
    out = apply(cluster, docs[0], namespace)
    assert out.returncode == 0, out.stderr
    table = cluster.kubectl("get", "orch", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header[:3] == ["NAME", "STRATEGY", "PHASE"]
    assert docs[0]["metadata"]["name"] in table.stdout


@pytest.mark.parametrize("case", BAD_SPECS, ids=lambda c: c["name"])
def test_api_server_rejects_bad_spec_with_the_same_message(
    cluster: ClusterHandle, crds: list[str], namespace: str, case: dict[str, Any]
) -> None:
    manifest = copy.deepcopy(case["manifest"])
    manifest.setdefault("apiVersion", API_VERSION)
    out = cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-", input=json.dumps(manifest))
    assert out.returncode != 0, f"{case['name']} was accepted"
    assert case["expect"] in out.stderr, out.stderr


def test_scale_subresource_sets_spec_replicas(cluster: ClusterHandle, crds: list[str], namespace: str) -> None:
    assert apply(cluster, AGENT, namespace).returncode == 0
    scaled = cluster.kubectl("scale", "agent/x", "-n", namespace, "--replicas=3")
    assert scaled.returncode == 0, scaled.stderr
    out = cluster.kubectl("get", "agent/x", "-n", namespace, "-o", "jsonpath={.spec.replicas}")
    assert out.stdout == "3"
