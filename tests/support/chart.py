"""The Helm chart as the pinned helm renders it, for the chart's test modules."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "podium"

NAMESPACE = "podium-system"

# helm built with `go install` assumes Kubernetes v1.20 offline; the chart needs the version the cluster runs.
KUBE = ("--kube-version", "v1.34.4")


def _helm() -> str | None:
    candidates = [
        os.environ.get("PODIUM_HELM", ""),
        str(ROOT / ".podium" / "bin" / "helm"),
        str(Path.home() / ".cache" / "podium" / "k8s-v1.34.4" / "bin" / "helm"),
        shutil.which("helm") or "",
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


HELM = _helm()


@pytest.fixture
def helm_is_built() -> None:
    """Fails the test with the fix when helm is missing (a module opts in with pytestmark usefixtures)."""
    if HELM is None:
        pytest.fail("helm is not built: run `make setup` (localcluster/build.sh)")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, check=False)


def render(*sets: str, hooks: bool = False) -> list[dict[str, Any]]:
    """`helm template podium` with `--set` values; every rendered object, CRDs included, and the `helm test` hook's
    objects with ``hooks`` (they exist only while `helm test` runs)."""
    args = ["template", "podium", str(CHART), "--namespace", NAMESPACE, "--include-crds", *KUBE]
    if not hooks:
        args.append("--no-hooks")
    for s in sets:
        args += ["--set", s]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def as_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) triples: rule order and grouping do not change what is allowed."""
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
