"""The operator's Kubernetes calls (by REST path) on the local cluster: each reads and writes what it says, and calls
whose answer it does not need (status patches, Events, scale, pod deletion) give their connection back, so a busy
operator reuses a few TLS connections instead of opening one per call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from podium.api.common import FINALIZER
from podium.operator.agents.children import HASH_ANNOTATION, MANAGED_BY
from podium.operator.kube import API_CONCURRENCY, Kube, describe_error, objects_path
from podium.operator.orchestrations.shards import RunWatch

from .conftest import ClusterHandle
from .helpers import agent, apply


def connections_opened(api: client.ApiClient) -> int:
    pools = api.rest_client.pool_manager.pools
    return sum(pools[key].num_connections for key in pools.keys())


@pytest.fixture
def kube(cluster: ClusterHandle) -> Iterator[Kube]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = API_CONCURRENCY
    kube = Kube(client.ApiClient(configuration))
    yield kube
    kube.close()


def test_status_patches_and_events_reuse_the_pools_connections(
    cluster: ClusterHandle, crds: None, namespace: str, kube: Kube
) -> None:
    apply(cluster, namespace, agent("quiet", replicas=0))
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

    asyncio.run(calls())
    # One after another, 80 calls: one connection would do; a few are allowed for the API server's own closes.
    assert connections_opened(kube.api) <= 3, connections_opened(kube.api)
    got = cluster.kubectl("get", "agent", "quiet", "-n", namespace, "-o", "jsonpath={.status.message}")
    assert got.stdout == "patch 19"


def test_children_and_objects_are_read_and_written_by_their_paths(
    cluster: ClusterHandle, crds: None, namespace: str, kube: Kube
) -> None:
    """Every call the operator makes by REST path, against the API server: what it applies is there, what it lists
    is what is stored, a refused write names the field, and a finalizer goes on and off."""
    apply(cluster, namespace, agent("listed", replicas=0))
    meta = {"name": "c1", "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta | {"annotations": {HASH_ANNOTATION: "1"}}}

    async def calls() -> None:
        assert await kube.get("ConfigMap", namespace, "c1") is None
        assert await kube.ensure(config_map | {"data": {"k": "v"}}, None) == "created"
        stored = await kube.get("ConfigMap", namespace, "c1")
        assert stored is not None and stored["data"] == {"k": "v"}
        assert await kube.ensure(config_map | {"data": {"k": "v"}}, stored) == "unchanged"
        deadline = time.monotonic() + 10  # the list comes from the API server's watch cache
        while ("ConfigMap", "c1") not in await kube.children(namespace):
            assert time.monotonic() < deadline, "the applied ConfigMap never showed in the managed list"
            await asyncio.sleep(0.2)
        with pytest.raises(ApiException) as refused:
            await kube.run(kube._apply, config_map | {"data": {"k": 5}})
        said = describe_error(refused.value)  # the API server's status and what it refused, not an HTTP dump
        assert said.startswith("the API server answered") and ".data.k" in said, said
        [listed] = await kube.run(kube.list_objects, "agents", namespace)
        assert listed["metadata"]["name"] == "listed" and listed["spec"]["role"] == "echo"
        assert await kube.add_finalizer("agents", listed, FINALIZER)
        [held] = await kube.run(kube.list_objects, "agents", namespace, None)
        assert FINALIZER in held["metadata"]["finalizers"]
        assert await kube.remove_finalizer("agents", held, FINALIZER)

    asyncio.run(calls())
    got = cluster.kubectl("get", "agent", "listed", "-n", namespace, "-o", "jsonpath={.metadata.finalizers}")
    assert FINALIZER not in got.stdout


async def test_the_run_watch_lists_once_and_goes_on_from_where_each_watch_ended(
    cluster: ClusterHandle, crds: None, namespace: str, kube: Kube
) -> None:
    """The replica's view of the runs: the API server ends each watch after `watch_seconds`; the next one starts
    from the last version seen, so runs applied and deleted across several watches are all seen with one LIST."""
    lists: list[str] = []
    read = kube.read

    def counting(path: str, query: Any = None) -> dict[str, Any]:
        lists.append(path)
        return read(path, query)

    kube.read = counting  # type: ignore[method-assign]
    view = RunWatch(kube, [namespace], lambda: None)
    view.watch_seconds = 1
    view.start()

    async def seen(name: str, present: bool = True) -> None:
        deadline = time.monotonic() + 20
        while ((namespace, name) in view.bodies) != present:
            assert time.monotonic() < deadline, f"{name} {'never seen' if present else 'still seen'}"
            await asyncio.sleep(0.1)

    def run(name: str) -> dict[str, Any]:
        stages = [{"name": "s", "agent": "a"}]
        return {"apiVersion": "podium.dev/v1alpha1", "kind": "Orchestration", "metadata": {"name": name},
                "spec": {"strategy": "pipeline", "pipeline": {"stages": stages}}}  # fmt: skip

    try:
        await asyncio.wait_for(view.synced.wait(), 30)
        apply(cluster, namespace, run("first"))
        await seen("first")
        await asyncio.sleep(3.5)  # three watches ended meanwhile
        apply(cluster, namespace, run("second"))
        await seen("second")
        assert cluster.kubectl("delete", "-n", namespace, "orchestration", "first").returncode == 0
        await seen("first", present=False)
        assert lists == [objects_path("orchestrations", namespace)]  # listed once, at the start
    finally:
        view.stop()
