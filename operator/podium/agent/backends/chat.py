"""The ``llm`` backend's HTTP client: one aiohttp session (connections reused) to one chat-completions URL.

What it handles so that the backend sees only answers and clear errors:

* **Throttling.** 429, and 503 with ``Retry-After``, wait as the server asks (seconds or an HTTP date) when that
  fits in the task's time, up to :data:`MAX_WAITS` times; otherwise :class:`Throttled` goes back to the engine,
  which waits before its next attempt and does not count it against the agent's circuit breaker.
* **Features the server lacks.** A 400 to a ``json_schema`` response format is retried with ``json_object``, a
  400 to a streamed request is retried unstreamed; a fallback that then works is remembered for this process, so
  the refused request is not sent again.
* **Streaming** (``stream: true`` with usage in the last event) where the server offers it, to time the first
  token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from podium import telemetry
from podium.agent.backends.base import TASK_DEADLINE, BackendError, Refused, Throttled, Unreachable, tail
from podium.agent.backends.openai_wire import (
    JSON_OBJECT,
    JSON_SCHEMA,
    Completion,
    StreamReader,
    WireError,
    read_completion,
    request_body,
    response_format,
    retry_after_seconds,
)

log = logging.getLogger("podium.agent.llm")

MAX_WAITS = 3  # throttled answers waited out within one call before giving the attempt back
MAX_INLINE_WAIT_SECONDS = 30.0  # longer waits go back to the engine (the agent's slot is not held that long)
THROTTLE_STATUSES = (429, 503)
CONNECT_TIMEOUT_SECONDS = 10.0  # the task's own timeout bounds everything else
PROBE_TIMEOUT_SECONDS = 5.0
OUTAGE_STATUSES = (502, 503, 504)  # a server starting (llama-server loading its model) or a proxy with none behind
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Request:
    model: str
    messages: list[dict[str, Any]]
    temperature: float
    max_tokens: int | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    schema: dict[str, Any] | None = None
    schema_name: str = "answer"
    tools: list[dict[str, Any]] | None = None  # OpenAI's native `tools` (podium.agent.tools.calling)
    tool_choice: str = "auto"  # with tools: "none" once no more calls are allowed


def inline_wait(retry_after: float | None, waits: int, now: float, deadline: float | None) -> float | None:
    """How long to wait before asking again, or None to give the attempt back. Without ``Retry-After`` the wait
    doubles from 1 s; with one it is honoured only if it leaves at least half of the task's remaining time."""
    if waits >= MAX_WAITS:
        return None
    wait = retry_after if retry_after is not None else float(2**waits)
    if wait > MAX_INLINE_WAIT_SECONDS:
        return None
    if deadline is not None and wait > (deadline - now) / 2:
        return None
    return wait


class ChatClient:
    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        shown_url: str,
        sleep: Sleep = asyncio.sleep,
        probe_url: str | None = None,
    ) -> None:
        self.url = url
        self.probe_url = probe_url
        self.headers = dict(headers)
        self.shown_url = shown_url
        self.sleep = sleep
        self.session: aiohttp.ClientSession | None = None
        # What this server supports, once learnt: None = not known yet (try it).
        self.json_schema: bool | None = None
        self.stream: bool | None = None

    async def start(self) -> None:
        if self.session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS)
            self.session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def probe(self) -> str | None:
        """Why the server takes no requests now, or None. A GET of ``probe_url`` (the API's model list): any answer
        but 502, 503 or 504 is a server that is up (one without that path, or without GET at all, or wanting
        another key, still answers)."""
        if self.probe_url is None:
            return None
        await self.start()
        assert self.session is not None
        try:
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
            async with self.session.get(self.probe_url, headers=self.headers, timeout=timeout) as resp:
                if resp.status in OUTAGE_STATUSES:
                    body = (await resp.read()).decode("utf-8", errors="replace")
                    return f"{self.shown_url} answers {resp.status} {resp.reason or ''}: {tail(body, 200)}"
                return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"cannot reach {self.shown_url}: {str(exc) or type(exc).__name__}"

    async def complete(self, request: Request) -> Completion:
        """One answer, after waiting out throttling and falling back from features the server refuses."""
        mode = None if request.schema is None else (JSON_OBJECT if self.json_schema is False else JSON_SCHEMA)
        stream = self.stream is not False
        tried: list[tuple[str | None, bool]] = []
        waits = 0
        while True:
            tried.append((mode, stream))
            try:
                completion = await self._post(request, mode, stream)
            except Throttled as exc:
                loop = asyncio.get_running_loop()
                wait = inline_wait(exc.retry_after, waits, loop.time(), TASK_DEADLINE.get())
                if wait is None:
                    raise
                waits += 1
                log.info(f"{exc}; waiting {wait:g}s before asking again ({waits}/{MAX_WAITS})")
                telemetry.event("podium.llm.throttled", {"podium.llm.wait_seconds": wait})
                await self.sleep(wait)
                continue
            except Refused as exc:
                if request.tools and "tool" in str(exc).lower():
                    raise  # the server refuses tools: the tool loop decides (it falls back to schema-constrained calls)
                fallback = self._fallback(tried, str(exc))
                if fallback is None:
                    raise
                log.warning(f"{exc}; retrying with response_format {fallback[0]}, stream {fallback[1]}")
                telemetry.event(
                    "podium.llm.fallback",
                    {"podium.llm.response_format": str(fallback[0]), "podium.llm.stream": fallback[1]},
                )
                mode, stream = fallback
                continue
            self._learn(tried, (mode, stream))
            return completion

    def _fallback(self, tried: list[tuple[str | None, bool]], error: str) -> tuple[str | None, bool] | None:
        """The next request to try after a 400: one feature less than the first request (the one the error names
        first), then both; features this server is known to support are not dropped."""
        mode, stream = tried[0]
        drop_schema = (JSON_OBJECT, stream) if mode == JSON_SCHEMA and self.json_schema is not True else None
        drop_stream = (mode, False) if stream and self.stream is not True else None
        both = (JSON_OBJECT, False) if drop_schema and drop_stream else None
        order = [drop_stream, drop_schema] if "stream" in error.lower() else [drop_schema, drop_stream]
        return next((c for c in (*order, both) if c is not None and c not in tried), None)

    def _learn(self, tried: list[tuple[str | None, bool]], worked: tuple[str | None, bool]) -> None:
        """What worked is supported; a feature is not when the same request with it was refused and without it
        worked (fallbacks drop one feature at a time, so this tells which one made the difference)."""
        mode, stream = worked
        if mode == JSON_SCHEMA:
            self.json_schema = True
        elif mode == JSON_OBJECT and (JSON_SCHEMA, stream) in tried:
            self.json_schema = False
        if stream:
            self.stream = True
        elif (mode, True) in tried:
            self.stream = False

    async def _post(self, request: Request, mode: str | None, stream: bool) -> Completion:
        await self.start()
        assert self.session is not None
        response = (
            None
            if mode is None or request.schema is None
            else response_format(request.schema, mode, request.schema_name)
        )
        body = request_body(
            request.model,
            request.messages,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            seed=request.seed,
            frequency_penalty=request.frequency_penalty,
            response=response,
            stream=stream,
            tools=request.tools,
            tool_choice=request.tool_choice,
        )
        for fresh in (False, True):
            started = time.monotonic()
            try:
                async with self.session.post(self.url, json=body, headers=self.headers) as resp:
                    if resp.status >= 400:
                        raise self._error(resp.status, resp.reason or "", resp.headers, await resp.text())
                    if stream and resp.content_type == "text/event-stream":
                        return await self._read_stream(resp, started)
                    return read_completion(await resp.json(content_type=None))
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # A kept-alive connection the server had closed (llama-server closes after every streamed
                # answer, although it offers keep-alive): the request never got an answer; ask once more.
                if fresh or isinstance(exc, aiohttp.ClientConnectorError):
                    raise Unreachable(f"llm: cannot reach {self.shown_url}: {exc}") from exc
            except aiohttp.ClientError as exc:
                raise Unreachable(f"llm: cannot reach {self.shown_url}: {exc}") from exc
            except WireError as exc:
                raise BackendError(f"llm: {exc}") from None
            except ValueError as exc:  # a body that is not JSON
                raise BackendError(f"llm: answer from {self.shown_url} is not JSON: {exc}") from None
        raise AssertionError("unreachable: the second try returns or raises")

    async def _read_stream(self, resp: aiohttp.ClientResponse, started: float) -> Completion:
        reader = StreamReader()
        first: float | None = None
        async for raw in resp.content:
            if reader.feed(raw.decode("utf-8", errors="replace")) and first is None:
                first = time.monotonic() - started
            if reader.done:
                break
        return reader.completion(first)

    def _error(self, status: int, reason: str, headers: Mapping[str, str], text: str) -> BackendError:
        message = f"llm: {status} {reason} from {self.shown_url}: {tail(text, 500)}"
        retry_after = retry_after_seconds(headers.get("Retry-After"))
        # A 503 without Retry-After is an outage, not a request to slow down: it counts against the breaker.
        if status == 429 or (status in THROTTLE_STATUSES and retry_after is not None):
            return Throttled(message, retry_after)
        if status == 400:
            return Refused(message)
        if status in OUTAGE_STATUSES:
            return Unreachable(message)
        return BackendError(message)
