"""A resync that reads children from the namespace's list and the Deployment index writes nothing when nothing
drifted, and writes exactly the child that did."""

from __future__ import annotations

import base64
import copy
from typing import Any

from kubernetes import client

from podium.operator.agents.reconcile import desired_children
from podium.operator.indexes import agent_deployments
from podium.operator.kube import Kube, _essence, secret_value
from tests.support.agents import SETTINGS, make_agent


class RecordingKube(Kube):
    def __init__(self) -> None:
        super().__init__(client.ApiClient())
        self.applied: list[str] = []

    def _apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(manifest["kind"])
        return manifest


def as_stored(manifest: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server returns it: what we applied plus fields of its own."""
    stored = copy.deepcopy(manifest)
    stored["metadata"] |= {"uid": "u1", "resourceVersion": "7", "managedFields": [{"manager": "x"}]}
    if stored["kind"] == "Secret" and "stringData" in stored:
        stored["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in stored.pop("stringData").items()}
    return stored


async def test_unchanged_children_read_from_the_snapshot_and_index_are_not_written() -> None:
    desired = desired_children(make_agent(replicas=2), "pw", SETTINGS, None).manifests
    stored = {kind: as_stored(m) for kind, m in desired.items()}
    dep = stored["Deployment"]
    view = agent_deployments(
        namespace="ns",
        labels=dep["metadata"]["labels"],
        annotations=dep["metadata"].get("annotations") or {},
        spec=dep["spec"],
        status={"replicas": 2},
    )
    [(_, deployment)] = view.items()
    existing = {kind: _essence(o) for kind, o in stored.items() if kind != "Deployment"}
    existing["Deployment"] = deployment.essence()
    assert secret_value(existing["Secret"], "password") == "pw"
    kube = RecordingKube()
    outcomes = {kind: await kube.ensure(m, existing[kind]) for kind, m in desired.items()}
    assert set(outcomes.values()) == {"unchanged"} and kube.applied == []
    changed = desired_children(make_agent(replicas=2, concurrency=9), "pw", SETTINGS, None).manifests
    outcomes = {kind: await kube.ensure(m, existing[kind]) for kind, m in changed.items()}
    assert outcomes["ConfigMap"] == "updated" and "ConfigMap" in kube.applied and outcomes["Secret"] == "unchanged"
    kube.close()
