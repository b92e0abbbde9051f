"""A2A on the local cluster: the official SDK's client talks to a Podium Agent (spec.a2a) through the Service the
operator made, and Podium Agents with the a2a backend call A2A agents: one made with the SDK, and a Podium Agent by
its Service name."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from a2a.types import Part
from google.protobuf.json_format import MessageToDict

from podium.dataplane.bus import Bus
from podium.dataplane.messages import Result, Task
from podium_localcluster.redis_server import RedisServer
from tests.support.a2a import sdk_agent_in_thread, send
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import Operator, apply, get, require_ready_node, status_of

DOCUMENTER = {"python": {"entrypoint": "podium.demo.agents:documenter"}}


def a2a_agent(name: str, backend: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": {"role": "documenter", "capabilities": [{"name": "writing", "level": 0.8}], "backend": backend, **spec},
    }


def ready(cluster: ClusterHandle, ns: str, name: str) -> None:
    wait_for(
        f"Agent {name} Ready 1/1",
        lambda: status_of(cluster, ns, "agent", name).get("ready") == "1/1",
        timeout=120,
        detail=lambda: cluster.kubectl("-n", ns, "describe", "pods", "-l", f"podium.dev/agent={name}").stdout[-3000:],
    )


def run_task(server: RedisServer, task: Task, timeout: float = 60) -> Result | None:
    async def go() -> Result | None:
        client = aioredis.Redis(host=server.host, port=server.port)
        bus = Bus(client)
        try:
            await bus.dispatch(task)
            return await bus.wait_result(task, timeout)
        finally:
            await bus.close()
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def writer(cluster: ClusterHandle, ns: str, operator: Operator) -> str:
    """The A2A URL of Agent `writer` (demo documenter, spec.a2a on) through its Service's address."""
    require_ready_node(cluster)
    apply(cluster, ns, a2a_agent("writer", DOCUMENTER, a2a={"enabled": True}))
    ready(cluster, ns, "writer")
    service = get(cluster, ns, "service", "writer")
    assert service is not None
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"http": 8080, "a2a": 8081}
    return f"http://{service['spec']['clusterIP']}:{ports['a2a']}"


def test_the_sdk_client_streams_a_task_from_a_podium_agent_through_its_service(writer: str) -> None:
    exchange = asyncio.run(send(writer, [Part(text="Agents answer over A2A on Kubernetes")]))
    assert exchange.card.name == "writer"
    assert {i.url for i in exchange.card.supported_interfaces} == {f"{writer}/", f"{writer}/rest"}
    states = exchange.states()
    assert states[0] == "TASK_STATE_SUBMITTED" and "TASK_STATE_WORKING" in states, states
    assert states[-1] == "TASK_STATE_COMPLETED", states
    artifact = next(e.artifact_update.artifact for e in exchange.events if e.HasField("artifact_update"))
    assert MessageToDict(artifact.parts[0].data)["summary"] == "Agents answer over A2A on Kubernetes"
    assert MessageToDict(artifact.metadata)["podium"]["replica"].startswith("writer-")


def test_a_podium_agent_calls_an_sdk_agent(
    cluster: ClusterHandle, ns: str, operator: Operator, redis_server: RedisServer
) -> None:
    require_ready_node(cluster)
    # Pods share the host's network on the local cluster, so the SDK agent in this process is reachable on loopback.
    with sdk_agent_in_thread() as remote:
        apply(cluster, ns, a2a_agent("words", {"a2a": {"url": remote.url}}))
        ready(cluster, ns, "words")
        task = Task(
            id=f"t-{uuid.uuid4().hex[:8]}",
            kind="execute",
            input="four words from kubernetes",
            namespace=ns,
            agent="words",
        )
        result = run_task(redis_server, task)
    assert result is not None and result.ok, result
    assert result.output == {"words": 4, "upper": "FOUR WORDS FROM KUBERNETES"}
    assert remote.seen.messages[0]["metadata"]["podium"]["taskId"] == task.id


def test_a_podium_agent_calls_another_by_its_service_name(
    cluster: ClusterHandle, ns: str, operator: Operator, redis_server: RedisServer, writer: str
) -> None:
    apply(cluster, ns, a2a_agent("front", {"a2a": {"url": f"http://writer.{ns}.svc:8081"}}))
    ready(cluster, ns, "front")
    task = Task(
        id=f"t-{uuid.uuid4().hex[:8]}",
        kind="review",
        input={"text": "operators reconcile"},
        namespace=ns,
        agent="front",
    )
    result = run_task(redis_server, task)
    assert result is not None and result.ok, result
    # The documenter's review in its contract; the kind and the quality crossed A2A both ways.
    assert set(result.output) == {"score", "comment"} and "(documenter)" in result.output["comment"]
    assert result.quality is not None and round(result.quality * 10) == result.output["score"]
