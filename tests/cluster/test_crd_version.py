"""The operator tells CRDs older than itself, read from the local cluster's API server (Helm never upgrades a
chart's crds/, so after `helm upgrade` alone the installed ones are the previous version's)."""

from __future__ import annotations

from kubernetes import client

from podium.operator.crds import installed, outdated
from podium.operator.kube import Kube
from tests.cluster.conftest import ClusterHandle
from tests.cluster.helpers import apply_crds


async def test_the_operator_tells_crds_older_than_itself(
    cluster: ClusterHandle, kube_client: client.ApiClient, crds: None
) -> None:
    kube = Kube(kube_client)
    assert outdated(await installed(kube)) == []
    # What a CRD of an earlier version carries: another schema stamp (or none, before stamps existed).
    older = cluster.kubectl("annotate", "crd", "teams.podium.dev", "podium.dev/schema=an-earlier-one", "--overwrite")
    assert older.returncode == 0, older.stderr
    try:
        assert outdated(await installed(kube)) == ["teams.podium.dev"]
    finally:
        apply_crds(cluster)
    assert outdated(await installed(kube)) == []
