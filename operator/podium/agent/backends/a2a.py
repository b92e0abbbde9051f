"""A2A backend: each task goes to a remote A2A agent as one message, through the A2A SDK's client.

The agent card is read on the first task (not at start-up, so a remote agent that starts later does not crash this
one) and kept; a failure to reach the agent drops it, so the next attempt reads it again (the remote may have
moved or restarted with another card).
"""

from __future__ import annotations

from typing import Any

from podium import telemetry
from podium.agent.a2a import A2AUnavailable, require
from podium.agent.backends.base import BackendError, BackendOutput, TaskLike
from podium.api.agent import A2ABackend


class A2ARunner:
    name = "a2a"

    def __init__(self, spec: A2ABackend) -> None:
        self.spec = spec
        self.timeout_seconds = spec.timeout_seconds
        self.http: Any = None  # httpx.AsyncClient
        self.card: Any = None  # a2a.types.AgentCard
        self.client: Any = None  # a2a.client.Client

    async def start(self) -> None:
        try:
            require("client")
        except A2AUnavailable as exc:
            raise BackendError(f"a2a: {exc}") from None
        import httpx

        # No read timeout of httpx's own: the task's timeout (the runtime's) bounds every call.
        self.http = httpx.AsyncClient(headers=self.spec.headers or {}, timeout=httpx.Timeout(30.0, read=None))

    def handles(self, kind: str) -> bool:
        return kind != "bid"

    async def _connect(self) -> Any:
        if self.client is not None:
            return self.client
        from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
        from a2a.utils.constants import TransportProtocol

        try:
            self.card = await A2ACardResolver(self.http, self.spec.url).get_agent_card()
        except Exception as exc:
            raise BackendError(f"a2a: cannot read the agent card of {self.spec.url}: {_why(exc)}") from exc
        config = ClientConfig(
            streaming=self.spec.streaming,
            httpx_client=self.http,
            supported_protocol_bindings=[TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value],
        )
        try:
            self.client = ClientFactory(config).create(self.card)
        except Exception as exc:
            raise BackendError(f"a2a: no transport in common with {self.spec.url}: {_why(exc)}") from exc
        return self.client

    async def run(self, task: TaskLike) -> BackendOutput:
        from a2a.types import SendMessageRequest

        from podium.agent.a2a import convert

        client = await self._connect()
        accepts = list(self.card.default_input_modes)
        message = convert.outgoing_message(
            kind=str(task.kind),
            value=task.input,
            task_id=task.id,
            orchestration=task.orchestration,
            attempt=task.attempt,
            accepts_json=not accepts or convert.JSON_MEDIA_TYPE in accepts,
            traceparent=telemetry.traceparent(),  # the agent's task span: the remote work is its child
        )
        tracker = convert.Tracker()
        try:
            async for event in client.send_message(SendMessageRequest(message=message)):
                tracker.add(event)
        except BackendError:
            raise
        except Exception as exc:
            self.client = None  # read the card again next time
            raise BackendError(f"a2a: {self.spec.url}: {_why(exc)}") from exc
        try:
            answer = tracker.answer()
        except convert.Unanswered as exc:
            raise BackendError(f"a2a: {self.spec.url}: {exc}") from None
        except convert.NotUnderstood as exc:
            raise BackendError(f"a2a: {self.spec.url} answered with {exc}") from None
        return BackendOutput(answer.output, answer.quality, answer.tokens, answer.cost)

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.close()
        if self.http is not None:
            http, self.http = self.http, None
            await http.aclose()


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
