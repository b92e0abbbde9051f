"""An Agent served as an A2A agent (`spec.a2a`): the agent card, JSON-RPC and HTTP+JSON through the A2A SDK's
request handler, and an executor that turns each message into a task in the Agent's own inbox.

The message goes through the bus like any other task, so whichever replica is free runs it (the one that received
the message may be busy), it counts in the Agent's metrics and history, and the backend needs no A2A of its own.
The executor waits for the result on the bus and answers with it: a streaming client sees submitted, working
(queued in the inbox), then completed with the output as an artifact, or failed with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from a2a.helpers import new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill, Part
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    PROTOCOL_VERSION_0_3,
    PROTOCOL_VERSION_1_0,
    TransportProtocol,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from podium import __version__
from podium.agent.a2a import convert
from podium.api.agent import AgentSpec
from podium.dataplane.bus import Bus, QueueFull
from podium.dataplane.messages import PayloadTooLarge, Task

log = logging.getLogger("podium.agent.a2a")

JSONRPC_PATH = "/"
REST_PATH = "/rest"
MEDIA_TYPES = [convert.TEXT_MEDIA_TYPE, convert.JSON_MEDIA_TYPE]


def agent_card(spec: AgentSpec, namespace: str, agent: str, base_url: str) -> AgentCard:
    """The card of an Agent reached at ``base_url``: one skill per capability (or its role), JSON-RPC and
    HTTP+JSON interfaces, streaming."""
    base = base_url.rstrip("/")
    skills = [
        AgentSkill(
            id=c.name,
            name=c.name,
            description=f"{spec.role}: {c.name} at level {c.level:g} of 1",
            tags=[spec.role, c.name],
        )
        for c in spec.capabilities
    ] or [AgentSkill(id=spec.role, name=spec.role, description=f"work of a {spec.role}", tags=[spec.role])]
    return AgentCard(
        name=agent,
        description=spec.description or f"Podium agent {namespace}/{agent} ({spec.role})",
        version=__version__,
        provider=AgentProvider(organization="Podium", url="https://podium.dev"),
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=MEDIA_TYPES,
        default_output_modes=MEDIA_TYPES,
        skills=skills,
        # Both transports in both protocol versions the routes serve: 1.0, and 0.3 for older clients (the card then
        # carries 0.3's fields too).
        supported_interfaces=[
            AgentInterface(protocol_binding=binding, protocol_version=version, url=base + path)
            for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
            for binding, path in (
                (TransportProtocol.JSONRPC.value, JSONRPC_PATH),
                (TransportProtocol.HTTP_JSON.value, REST_PATH),
            )
        ],
    )


class InboxExecutor(AgentExecutor):
    """Each A2A message becomes one task in the Agent's inbox; its result is the answer."""

    def __init__(self, bus: Bus, namespace: str, agent: str, timeout_seconds: float) -> None:
        self.bus = bus
        self.namespace = namespace
        self.agent = agent
        self.timeout_seconds = timeout_seconds

    def _say(self, updater: TaskUpdater, text: str) -> Any:
        return updater.new_agent_message(parts=[Part(text=text, media_type=convert.TEXT_MEDIA_TYPE)])

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        if message is None:
            return
        task_id = context.task_id or str(uuid.uuid4())
        context_id = context.context_id or str(uuid.uuid4())
        if context.current_task is None:
            submitted = new_task_from_user_message(message)
            submitted.id, submitted.context_id = task_id, context_id
            await event_queue.enqueue_event(submitted)
        updater = TaskUpdater(event_queue, task_id, context_id)
        try:
            request = convert.request_of(message)
        except convert.NotUnderstood as exc:
            await updater.reject(self._say(updater, str(exc)))
            return
        task = Task(
            id=f"a2a-{task_id}",
            kind=request.kind,
            input=request.input,
            namespace=self.namespace,
            agent=self.agent,
            meta={"a2a": {"taskId": task_id, "contextId": context_id}},
            traceparent=request.traceparent,
        )
        where = f"{self.namespace}/{self.agent}"
        try:
            await self.bus.dispatch(task)
        except PayloadTooLarge as exc:
            await updater.reject(self._say(updater, str(exc)))
            return
        except QueueFull as exc:
            await updater.failed(self._say(updater, str(exc)))
            return
        log.info(f"A2A task {task_id} queued as {task.id} ({task.kind})", extra={"agent": self.agent})
        await updater.start_work(self._say(updater, f"queued in the inbox of agent {where} as task {task.id}"))
        result = await self.bus.wait_result(task, self.timeout_seconds)
        if result is None:
            await updater.failed(
                self._say(
                    updater,
                    f"no result within {self.timeout_seconds:g}s (spec.a2a.timeoutSeconds): task {task.id} is still "
                    f"in the inbox of agent {where} and will run, but this request no longer waits for it",
                )
            )
            return
        if not result.ok:
            await updater.failed(self._say(updater, result.error or "the task failed without a message"))
            return
        await updater.add_artifact(
            parts=convert.value_parts(result.output),
            name="result",
            metadata=convert.result_metadata(result.to_dict()),
            last_chunk=True,
        )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        # The bus cannot take one task back out of an inbox (only a whole orchestration's); say so.
        await updater.cancel(
            self._say(updater, "canceled: this request stops waiting; a task already queued still runs")
        )


def make_app(spec_of: Callable[[], AgentSpec], namespace: str, agent: str, bus: Bus) -> Starlette:
    """The A2A app of one replica; ``spec_of`` gives the Agent spec as the runtime knows it now (capabilities and
    description change live, so each card is built from it)."""
    spec = spec_of()
    a2a = spec.a2a
    assert a2a is not None
    # The handler checks requests against a card; the URLs in it are the served card's business.
    card = agent_card(spec, namespace, agent, a2a.url or "http://localhost")
    handler = DefaultRequestHandler(
        agent_executor=InboxExecutor(bus, namespace, agent, float(a2a.timeout_seconds)),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )

    async def card_route(request: Request) -> JSONResponse:
        base = a2a.url or str(request.base_url)
        return JSONResponse(agent_card_to_dict(agent_card(spec_of(), namespace, agent, base)))

    routes: list[Any] = [Route(AGENT_CARD_WELL_KNOWN_PATH, card_route, methods=["GET"])]
    routes += create_jsonrpc_routes(handler, rpc_url=JSONRPC_PATH, enable_v0_3_compat=True)
    routes += create_rest_routes(handler, path_prefix=REST_PATH, enable_v0_3_compat=True)
    return Starlette(routes=routes)


class _Server(uvicorn.Server):
    # The runtime owns SIGTERM (drain first); uvicorn's own handlers would stop the server at once.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class A2AServer:
    """The A2A server of one replica, in the runtime's event loop. :meth:`start` returns once the port is bound
    (raising OSError if it cannot be); :meth:`stop` lets open requests finish for up to ``grace`` seconds."""

    def __init__(self, app: Starlette, host: str, port: int, grace: float) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=max(1, int(grace))
        )
        self.server = _Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot serve A2A on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.port = sock.getsockname()[1]
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]), name="a2a-server")
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises what stopped it
                raise OSError(f"the A2A server on {self.host}:{self.port} stopped while starting")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await self.task
