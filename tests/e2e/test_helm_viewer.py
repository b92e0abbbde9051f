"""The chart's run viewer on the local cluster: `helm install --set viewer.enabled=true` runs `podium ui` as a pod
behind a Service, reading runs with its read-only RBAC and Redis as the read-only user the chart's Redis made."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .conftest import ClusterHandle
from .helpers import (
    Release,
    agent_manifest,
    diagnose,
    get,
    installed,
    pipeline_manifest,
    ready,
    wait_for,
)


@pytest.fixture(scope="module")
def release(cluster: ClusterHandle) -> Iterator[Release]:
    with installed(cluster, "ui", "--set", "viewer.enabled=true") as rel:
        yield rel


def viewer_get(cluster: ClusterHandle, release: Release, path: str) -> Any:
    service = get(cluster, "service", f"{release.name}-viewer", "-n", release.system)
    assert service is not None
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/{path}"
    with urllib.request.urlopen(url, timeout=15) as response:
        return json.loads(response.read())


def test_the_viewer_pod_shows_a_finished_run_with_everything_it_read(cluster: ClusterHandle, release: Release) -> None:
    ns = release.namespace
    pods = get(cluster, "pods", "-n", release.system, "-l", "app.kubernetes.io/component=viewer") or {"items": []}
    assert pods["items"] and ready(pods["items"][0]), diagnose(cluster, release)
    assert pods["items"][0]["spec"]["containers"][0]["command"] == ["podium", "ui"]

    docs = yaml.safe_dump_all([agent_manifest(ns), pipeline_manifest(ns)])
    assert cluster.kubectl("apply", "-f", "-", input=docs).returncode == 0

    def finished() -> dict[str, Any] | None:
        runs = {r["name"]: r for r in viewer_get(cluster, release, "api/runs")["runs"]}
        run = runs.get("notes")
        return run if run and run["phase"] in ("Succeeded", "Failed") else None

    try:
        run = wait_for("the viewer to show notes finished", finished, timeout=180)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnose(cluster, release)}") from None
    assert run["phase"] == "Succeeded" and run["strategy"] == "pipeline" and run["progress"] == "2/2"

    detail = viewer_get(cluster, release, "api/runs/notes")
    # Nothing missing: its service account read the run and its Events, its Redis user the journal and history.
    assert detail["warnings"] == [], detail["warnings"]
    assert [s["step"] for s in detail["steps"]] == ["stage-draft", "stage-polish"]
    assert sum(len(lane["bars"]) for lane in detail["timeline"]["lanes"]) == 2
    assert any("Normal Succeeded" in i["text"] for i in detail["history"])
    service = get(cluster, "service", f"{release.name}-viewer", "-n", release.system) or {}
    with urllib.request.urlopen(f"http://{service['spec']['clusterIP']}/", timeout=15) as page:
        assert b"viewer.js" in page.read()  # the page itself, on the Service's port 80


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("get", "orchestrations.podium.dev", True),
        ("list", "events", True),
        ("patch", "orchestrations.podium.dev", False),
        ("delete", "orchestrations.podium.dev", False),
        ("get", "agents.podium.dev", False),
        ("get", "secrets", False),
    ],
)
def test_the_viewers_service_account_only_reads_runs_and_events(
    cluster: ClusterHandle, release: Release, verb: str, resource: str, allowed: bool
) -> None:
    account = f"system:serviceaccount:{release.system}:{release.name}-viewer"
    out = cluster.kubectl("auth", "can-i", verb, resource, "-n", release.namespace, f"--as={account}")
    assert out.stdout.strip() == ("yes" if allowed else "no"), out.stdout + out.stderr
