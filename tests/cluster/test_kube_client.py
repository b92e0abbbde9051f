"""The operator's Kubernetes client on the local cluster: calls whose answer it does not need (status patches,
Events, scale, pod deletion) give their connection back, so a busy operator reuses a few TLS connections instead of
opening one per call."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client, config

from podium.operator.kube import API_CONCURRENCY, Kube

from .conftest import ClusterHandle
from .helpers import agent, apply


def connections_opened(api: client.ApiClient) -> int:
    pools = api.rest_client.pool_manager.pools
    return sum(pools[key].num_connections for key in pools.keys())


def test_status_patches_and_events_reuse_the_pools_connections(
    cluster: ClusterHandle, crds: None, namespace: str
) -> None:
    apply(cluster, namespace, agent("quiet", replicas=0))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = API_CONCURRENCY
    kube = Kube(client.ApiClient(configuration))
    body: dict[str, Any] = {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "quiet", "namespace": namespace},
    }

    async def calls() -> None:
        for i in range(20):
            await kube.patch_status("agents", namespace, "quiet", {"message": f"patch {i}"})
            await kube.run(kube._event, body, "Normal", "Checked", f"event {i}")
            await kube.patch_scale("agents", namespace, "quiet", 0)
            await kube.delete_pod(namespace, "no-such-pod")  # a 404: its connection comes back too

    try:
        asyncio.run(calls())
        # One after another, 80 calls: one connection would do; a few are allowed for the API server's own closes.
        assert connections_opened(kube.api) <= 3, connections_opened(kube.api)
        got = cluster.kubectl("get", "agent", "quiet", "-n", namespace, "-o", "jsonpath={.status.message}")
        assert got.stdout == "patch 19"
    finally:
        kube.close()
