"""A2A on the SDK's side, for the tests: a small A2A agent made with the official SDK (its executor, request handler,
routes and uvicorn, as the SDK's samples build one), and its client. Nothing of Podium's A2A code is used here, so
the tests check Podium against the SDK, not against itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import get_data_parts, get_text_parts, new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
)
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict
from starlette.applications import Starlette


@dataclass
class Seen:
    """What the SDK agent received: each message's parts' values and its metadata."""

    messages: list[dict[str, Any]] = field(default_factory=list)


class WordsExecutor(AgentExecutor):
    """Answers a text with `{"words": n, "upper": TEXT}` as a data artifact, and data with its keys sorted as text.
    A text starting with `fail` fails the task with the rest as the message; `ask` asks for more input."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None and context.task_id and context.context_id
        self.seen.messages.append(
            {
                "texts": get_text_parts(message.parts),
                "data": get_data_parts(message.parts),
                "metadata": MessageToDict(message.metadata),
            }
        )
        if context.current_task is None:
            await event_queue.enqueue_event(new_task_from_user_message(message))
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()
        texts = get_text_parts(message.parts)
        text = " ".join(texts)
        if text.startswith("fail"):
            await updater.failed(updater.new_agent_message([Part(text=text.removeprefix("fail").strip())]))
            return
        if text.startswith("ask"):
            await updater.requires_input(updater.new_agent_message([Part(text="which language?")]))
            return
        if texts:
            answer = {"words": len(text.split()), "upper": text.upper()}
            part = Part(data=ParseDict(answer, struct_pb2.Value()), media_type="application/json")
        else:
            keys = sorted(get_data_parts(message.parts)[0])
            part = Part(text=",".join(keys))
        await updater.add_artifact([part], name="answer", last_chunk=True)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class SDKAgent:
    url: str
    seen: Seen


@contextlib.asynccontextmanager
async def sdk_agent(*, streaming: bool = True) -> AsyncIterator[SDKAgent]:
    """The SDK agent above on a free loopback port (JSON-RPC at /, HTTP+JSON at /rest), in this event loop."""
    sock = _free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    card = AgentCard(
        name="words",
        description="Counts and shouts words",
        version="1.0.0",
        capabilities=AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["application/json", "text/plain"],
        skills=[AgentSkill(id="words", name="words", description="counts words", tags=["text"])],
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url=url + "/"),
            AgentInterface(protocol_binding="HTTP+JSON", protocol_version="1.0", url=url + "/rest"),
        ],
    )
    seen = Seen()
    handler = DefaultRequestHandler(agent_executor=WordsExecutor(seen), task_store=InMemoryTaskStore(), agent_card=card)
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, rpc_url="/"),
        *create_rest_routes(handler, path_prefix="/rest"),
    ]
    server = _Quiet(uvicorn.Config(Starlette(routes=routes), log_config=None, access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "the SDK's A2A server did not start"
        yield SDKAgent(url, seen)
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def sdk_agent_in_thread(*, streaming: bool = True) -> Iterator[SDKAgent]:
    """:func:`sdk_agent` in a thread of its own, for tests that wait synchronously (the cluster tiers)."""
    ready = threading.Event()
    found: list[SDKAgent | BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with sdk_agent(streaming=streaming) as agent:
                found.append(agent)
                ready.set()
                await stop.wait()
        except BaseException as exc:
            found.append(exc)
            ready.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), name="sdk-a2a-agent", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the SDK's A2A server did not start within 30s"
        if isinstance(found[0], BaseException):
            raise found[0]
        yield found[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


@dataclass
class Exchange:
    """One message sent with the SDK's client: every event it received, and the agent card it used."""

    card: AgentCard
    events: list[StreamResponse]

    def states(self) -> list[str]:
        from a2a.types import TaskState

        out = []
        for e in self.events:
            if e.HasField("task"):
                out.append(TaskState.Name(e.task.status.state))
            elif e.HasField("status_update"):
                out.append(TaskState.Name(e.status_update.status.state))
        return out

    def final_task(self) -> Any:
        tasks = [e.task for e in self.events if e.HasField("task")]
        return tasks[-1] if tasks else None


async def send(
    base_url: str,
    parts: list[Part],
    *,
    streaming: bool = True,
    transport: str = "JSONRPC",
    metadata: dict[str, Any] | None = None,
) -> Exchange:
    """Read the card at ``base_url`` and send one user message with the SDK's client."""
    async with httpx.AsyncClient(timeout=60) as http:
        card = await A2ACardResolver(http, base_url).get_agent_card()
        config = ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=[transport])
        client = ClientFactory(config).create(card)
        message = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=parts, metadata=metadata)
        events = [e async for e in client.send_message(SendMessageRequest(message=message))]
        return Exchange(card, events)
