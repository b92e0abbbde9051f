"""An Agent served over A2A (`spec.a2a`): a real `podium agent` with its own Redis ACL user, and the official A2A
SDK's client. Each message must become a task in the Agent's inbox, run by a replica, and come back as the answer."""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from a2a.types import Part
from google.protobuf.json_format import MessageToDict

from podium.dataplane.acl import agent_acl_rules
from podium.dataplane.bus import Bus
from podium.dataplane.keys import GROUP, AgentKeys
from podium.dataplane.library import ensure_library
from podium_localcluster.redis_server import RedisServer, free_port
from tests.integration.agent.conftest import StartAgent
from tests.support.a2a import send

SAMPLES = "tests.integration.agent.sample_agents"


@pytest.fixture
async def acl_user(redis_server: RedisServer, namespace: str) -> AsyncIterator[Any]:
    """Makes `podium agent` env for an ACL user limited to one A2A-serving agent's keys, as the operator would:
    the function library loaded, the user's rules, the inbox's group."""
    loader = aioredis.Redis(host=redis_server.host, port=redis_server.port)
    await ensure_library(loader)
    await loader.aclose()
    admin = redis.Redis(host=redis_server.host, port=redis_server.port)
    users: list[str] = []

    def make(agent: str) -> dict[str, str]:
        user, password = f"podium-agent:{namespace}/{agent}", secrets.token_hex(16)
        rules = agent_acl_rules(namespace, agent, a2a=True)
        admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", *rules)
        admin.xgroup_create(AgentKeys(namespace, agent).inbox, GROUP, id="0", mkstream=True)
        users.append(user)
        return {"PODIUM_REDIS_USERNAME": user, "PODIUM_REDIS_PASSWORD": password}

    yield make
    for user in users:
        admin.execute_command("ACL", "DELUSER", user)
    admin.close()


def serving(start_agent: StartAgent, acl_user: Any, name: str, backend: dict[str, Any], **a2a: Any) -> str:
    port = free_port()
    spec = {
        "role": "documenter",
        "description": "Writes summaries",
        "capabilities": [{"name": "writing", "level": 0.8}],
        "backend": backend,
        "a2a": {"enabled": True, "port": port, **a2a},
    }
    start_agent(name, spec, **acl_user(name))
    return f"http://127.0.0.1:{port}"


def data_of(artifact: Any) -> Any:
    return MessageToDict(artifact.parts[0].data)


DOCUMENTER = {"python": {"entrypoint": "podium.demo.agents:documenter"}}


async def test_sdk_client_reads_the_card_and_streams_a_task_run_through_the_inbox(
    start_agent: StartAgent, acl_user: Any, bus: Bus, namespace: str
) -> None:
    url = serving(start_agent, acl_user, "writer", DOCUMENTER)

    exchange = await send(url, [Part(text="Kubernetes operators reconcile declared state")])

    card = exchange.card
    assert card.name == "writer" and card.description == "Writes summaries"
    assert [s.id for s in card.skills] == ["writing"]
    assert card.capabilities.streaming
    # The card names the address it was read from, so the client calls back the same way.
    assert {i.protocol_binding: i.url for i in card.supported_interfaces} == {
        "JSONRPC": f"{url}/",
        "HTTP+JSON": f"{url}/rest",
    }
    states = exchange.states()
    assert states[0] == "TASK_STATE_SUBMITTED" and states[-1] == "TASK_STATE_COMPLETED", states
    assert "TASK_STATE_WORKING" in states
    artifacts = [e.artifact_update.artifact for e in exchange.events if e.HasField("artifact_update")]
    assert len(artifacts) == 1
    output = data_of(artifacts[0])
    assert output["title"] == "Kubernetes Operators Reconcile"
    assert output["summary"] == "Kubernetes operators reconcile declared state"
    podium = MessageToDict(artifacts[0].metadata)["podium"]
    assert podium["agent"] == "writer" and podium["taskId"].startswith("a2a-")

    # The work went through the Agent's inbox: the bus has the result, and the agent's history shows it.
    history = await bus.history(agent=(namespace, "writer"))
    assert [e.payload["task_id"] for e in history if e.type == "result"] == [podium["taskId"]]
    assert await bus.queue_depth(namespace, "writer") == 0


async def test_blocking_send_and_the_http_json_transport_answer_too(start_agent: StartAgent, acl_user: Any) -> None:
    url = serving(start_agent, acl_user, "writer", DOCUMENTER)

    blocking = await send(url, [Part(text="blocking send")], streaming=False)
    task = blocking.final_task()
    assert task is not None and task.status.state == 3, task  # TASK_STATE_COMPLETED
    assert MessageToDict(task.artifacts[0].parts[0].data)["summary"] == "blocking send"

    rest = await send(url, [Part(text="over rest")], transport="HTTP+JSON")
    assert rest.states()[-1] == "TASK_STATE_COMPLETED"


async def test_data_parts_and_the_podium_kind_in_metadata_reach_the_backend(
    start_agent: StartAgent, acl_user: Any
) -> None:
    url = serving(start_agent, acl_user, "doubler", {"python": {"entrypoint": f"{SAMPLES}:async_double"}})
    exchange = await send(url, [Part(data=_value(21))])
    assert exchange.states()[-1] == "TASK_STATE_COMPLETED"
    artifact = next(e.artifact_update.artifact for e in exchange.events if e.HasField("artifact_update"))
    # The data part's number reached the function as a number (21 * 2), and its envelope's tokens came back.
    assert data_of(artifact) == 42
    assert MessageToDict(artifact.metadata)["podium"]["tokens"] == 5

    writer = serving(start_agent, acl_user, "writer", DOCUMENTER)
    review = await send(writer, [Part(text="operators reconcile")], metadata={"podium": {"kind": "review"}})
    artifact = next(e.artifact_update.artifact for e in review.events if e.HasField("artifact_update"))
    assert set(data_of(artifact)) == {"score", "comment"}  # the documenter's review answer, in its contract
    quality = MessageToDict(artifact.metadata)["podium"]["quality"]
    assert round(quality * 10) == data_of(artifact)["score"]


async def test_the_callers_trace_context_reaches_the_task(start_agent: StartAgent, acl_user: Any) -> None:
    url = serving(start_agent, acl_user, "tracer", {"python": {"entrypoint": f"{SAMPLES}:trace_context"}})
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    traced = await send(url, [Part(text="hi")], metadata={"podium": {"traceparent": parent}})
    artifact = next(e.artifact_update.artifact for e in traced.events if e.HasField("artifact_update"))
    assert artifact.parts[0].text == parent  # the agent's task span is the caller's child
    untraced = await send(url, [Part(text="hi")])
    artifact = next(e.artifact_update.artifact for e in untraced.events if e.HasField("artifact_update"))
    assert artifact.parts[0].text == ""  # no caller span: the agent's starts a trace of its own


async def test_a_failing_backend_fails_the_a2a_task_with_its_error(start_agent: StartAgent, acl_user: Any) -> None:
    url = serving(start_agent, acl_user, "crasher", {"python": {"entrypoint": f"{SAMPLES}:crash"}})
    exchange = await send(url, [Part(text="anything")])
    assert exchange.states()[-1] == "TASK_STATE_FAILED"
    final = next(e.status_update.status for e in reversed(exchange.events) if e.HasField("status_update"))
    assert "ValueError: cannot handle 'anything'" in final.message.parts[0].text


async def test_what_a_podium_agent_cannot_take_is_rejected_with_the_reason(
    start_agent: StartAgent, acl_user: Any
) -> None:
    url = serving(start_agent, acl_user, "writer", DOCUMENTER)
    exchange = await send(url, [Part(url="https://example.invalid/report.pdf")])
    assert exchange.states()[-1] == "TASK_STATE_REJECTED"
    final = next(e.status_update.status for e in reversed(exchange.events) if e.HasField("status_update"))
    assert "not a file URL" in final.message.parts[0].text

    unknown = await send(url, [Part(text="x")], metadata={"podium": {"kind": "dance"}})
    assert unknown.states()[-1] == "TASK_STATE_REJECTED"


async def test_no_result_in_time_fails_the_request_and_says_the_task_still_runs(
    start_agent: StartAgent, acl_user: Any
) -> None:
    url = serving(start_agent, acl_user, "sleeper", {"python": {"entrypoint": f"{SAMPLES}:sleepy"}}, timeoutSeconds=1)
    exchange = await send(url, [Part(data=_value(3))])
    assert exchange.states()[-1] == "TASK_STATE_FAILED"
    final = next(e.status_update.status for e in reversed(exchange.events) if e.HasField("status_update"))
    assert "no result within 1s" in final.message.parts[0].text
    assert "will run" in final.message.parts[0].text


def test_the_card_serves_a2a_0_3_clients_too(start_agent: StartAgent, acl_user: Any) -> None:
    url = serving(start_agent, acl_user, "writer", DOCUMENTER)
    with urllib.request.urlopen(f"{url}/.well-known/agent-card.json", timeout=5) as resp:
        card = json.loads(resp.read())
    assert card["name"] == "writer"
    # 0.3 clients read the compatibility fields the SDK adds (kagent, older ADK agents).
    assert card["url"] == f"{url}/" and card["protocolVersion"]


def _value(data: Any) -> Any:
    from google.protobuf import struct_pb2
    from google.protobuf.json_format import ParseDict

    return ParseDict(data, struct_pb2.Value())
