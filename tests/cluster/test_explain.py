"""`kubectl explain` on the local cluster describes every field of Podium's kinds: the API server publishes the
CRDs' descriptions, and no field, at any depth of spec or status, says `<no description>`."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from podium.api.crd import KINDS, Kind, crd
from podium.api.schema import prose
from tests.support.wait import wait_for

from .conftest import ClusterHandle

API_VERSION = "podium.dev/v1alpha1"
FIELD_LINE = re.compile(r"^(?P<indent> *)(?P<name>[A-Za-z0-9_$-]+)\t<")
# Kubernetes' own ObjectMeta, not ours: its fields are described by the API server itself.
NOT_OURS = ".metadata."


def explain(cluster: ClusterHandle, path: str, *flags: str) -> str:
    out = cluster.kubectl("explain", path, f"--api-version={API_VERSION}", *flags)
    assert out.returncode == 0, f"kubectl explain {path}: {out.stderr}"
    return out.stdout


def field_paths(recursive: str, root: str) -> list[str]:
    """Every field path of `kubectl explain <root> --recursive` (its FIELDS tree, indented two spaces a level)."""
    paths: list[str] = []
    stack: list[str] = []
    for line in recursive.split("FIELDS:", 1)[1].splitlines():
        match = FIELD_LINE.match(line)
        if match is None:
            continue  # `enum: ...` lines
        level = len(match["indent"]) // 2
        del stack[level - 1 :]
        stack.append(match["name"])
        paths.append(".".join([root, *stack]))
    return paths


def declared_paths(node: dict[str, Any], prefix: str) -> list[str]:
    """Field paths of a CRD schema as kubectl names them: array items and map values add no path segment."""
    out = []
    for name, child in node.get("properties", {}).items():
        out.append(f"{prefix}.{name}")
        out += declared_paths(child, f"{prefix}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out += declared_paths(node[key], prefix)
    return out


def description_section(text: str) -> str:
    return text.split("DESCRIPTION:", 1)[1].split("FIELDS:", 1)[0].strip()


@pytest.fixture(scope="module")
def published(cluster: ClusterHandle, crds: None) -> None:
    """Wait until the API server publishes these CRDs' current schemas (OpenAPI is rebuilt asynchronously)."""

    def current(kind: Kind) -> bool:
        out = cluster.kubectl("explain", kind.plural, f"--api-version={API_VERSION}")
        shown = description_section(out.stdout).split() if "DESCRIPTION:" in out.stdout else []
        return out.returncode == 0 and shown[:8] == prose(kind.resource.__doc__ or "").split()[:8]

    for kind in KINDS:
        wait_for(f"kubectl explain {kind.plural} to show the current description", lambda k=kind: current(k), 60, 1)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_kubectl_explain_describes_every_field(cluster: ClusterHandle, published: None, kind: Kind) -> None:
    paths = [p for p in field_paths(explain(cluster, kind.plural, "--recursive"), kind.plural) if NOT_OURS not in p]
    # The tree kubectl shows is every field the CRD declares, at every depth of spec and status.
    assert set(paths) == set(declared_paths(crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"], kind.plural))
    assert f"{kind.plural}.status.conditions.lastTransitionTime" in paths

    def problems(path: str) -> list[str]:
        text = explain(cluster, path)
        found = []
        if "<no description>" in text:
            undescribed = [line.split("\t")[0].strip() for line in _no_description_fields(text)]
            found.append(f"{path}: <no description> for {', '.join(undescribed) or path}")
        if description_section(text) in ("", "<empty>"):
            found.append(f"{path}: empty DESCRIPTION")
        return found

    # Two at a time: each call is a kubectl process reading the published OpenAPI.
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = [p for problems_of_path in pool.map(problems, [kind.plural, *paths]) for p in problems_of_path]
    assert not found, f"{len(found)} field(s) of {kind.kind} without a description:\n  " + "\n  ".join(found)


def _no_description_fields(text: str) -> list[str]:
    lines = text.splitlines()
    return [lines[i - 1] for i, line in enumerate(lines) if line.strip() == "<no description>" and i > 0]


def test_explain_shows_a_fields_meaning_units_and_default(cluster: ClusterHandle, published: None) -> None:
    """What the issue quoted as `<no description>` now explains itself."""
    retry = explain(cluster, "agents.spec.resilience.retry")
    assert "How often a failed task is tried again" in description_section(retry)
    assert "<no description>" not in retry
    limit = " ".join(description_section(explain(cluster, "agents.spec.resilience.retry.limit")).split())
    assert "limit + 1 attempts" in limit and limit.endswith("Default: 3. Range: 0 to 20.")
    breaker = " ".join(explain(cluster, "agents.spec.resilience.circuitBreaker.recoveryTimeoutSeconds").split())
    assert "half-open" in breaker and "Default: 60." in breaker
    strategy = explain(cluster, "orchestrations.spec.strategy")
    assert "ENUM:" in strategy and "- peerToPeer:" in strategy
