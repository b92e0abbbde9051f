"""A fault-injecting HTTP proxy in front of a real model server: the answers are the model's own, the faults are
ours (a 429 with Retry-After, a refused feature, an answer cut short or garbled, a server too slow, and native
``tool_calls``, which the small model never makes: what a model trained for tool calling would answer).

Faults are queued with :meth:`FaultProxy.inject` and consumed in order by the requests they match; every request
is recorded (arrival time, body, the client's port) for the test to read. Streamed answers are read whole from
the server and, when a fault rewrites them, re-sent as a short event stream of the same meaning.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

Match = Callable[[dict[str, Any]], bool]


@dataclass
class Fault:
    status: int | None = None  # answer this status (with headers and text) instead of forwarding
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    delay: float = 0.0  # seconds before forwarding
    content: str | None = None  # replace the model's answer text
    truncate: int | None = None  # keep only this many characters of the answer, as if cut at the token limit
    match: Match | None = None  # which requests it applies to (default: any chat completion; a probe's GET is
    # seen as {"GET": "/v1/models"} and is matched only by a ``match`` that says so)
    times: int = 1
    # Replace the answer with these native tool calls ({"name", "arguments"}: arguments as a dict or JSON text).
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class Seen:
    at: float  # time.monotonic() on arrival
    body: dict[str, Any]
    peer_port: int
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0  # what the proxy answered

    @property
    def response_type(self) -> str | None:
        fmt = self.body.get("response_format")
        return fmt.get("type") if isinstance(fmt, dict) else None

    @property
    def last_user_message(self) -> str:
        return next(m["content"] for m in reversed(self.body["messages"]) if m["role"] == "user")


def wants_schema(body: dict[str, Any]) -> bool:
    return (body.get("response_format") or {}).get("type") == "json_schema"


def streamed(body: dict[str, Any]) -> bool:
    return bool(body.get("stream"))


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:8080 (no /v1)
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []  # chat completions
        self.probed: list[Seen] = []  # GETs of the model list (the llm backend's probe)
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    async def start(self) -> FaultProxy:
        """Serve from a thread of its own, on its own event loop: a test that blocks its loop (a synchronous wait
        for an agent's /readyz, which needs the agent's probe answered through this proxy) does not stall it."""
        started = threading.Event()
        failed: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:
                failed.append(exc)
                started.set()
                loop.close()
                return
            self._loop = loop
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._shut())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fault-proxy", daemon=True)
        self._thread.start()
        await asyncio.to_thread(started.wait)
        if failed:
            raise failed[0]
        return self

    async def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
            self._loop = self._thread = None

    async def _open(self) -> None:
        # A new connection per request upstream: llama-server closes a kept-alive connection after a streamed
        # answer, and the proxy should add no faults of its own.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/v1/models", self._handle)  # what the llm backend's probe asks (seen as {"GET": path})
        # A client that gives up (a task timeout) cancels its handler, as a real server stops generating.
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shut(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _take(self, body: dict[str, Any]) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and ("GET" not in body if fault.match is None else fault.match(body)):
                fault.times -= 1
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.method == "POST" else {request.method: request.path}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen = Seen(time.monotonic(), body, peer[1] if peer else 0, dict(request.headers))
        (self.seen if request.method == "POST" else self.probed).append(seen)
        fault = self._take(body)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            seen.status = fault.status
            return web.Response(status=fault.status, headers=fault.headers, text=fault.text)
        assert self.session is not None
        sent = body if request.method == "POST" else None
        async with self.session.request(request.method, self.upstream + request.path, json=sent) as up:
            raw = await up.read()
            seen.status = up.status
            content_type = up.content_type
            if fault is None or up.status != 200 or (fault.content, fault.truncate, fault.tool_calls) == (None,) * 3:
                return web.Response(status=up.status, body=raw, content_type=content_type)
        if content_type == "text/event-stream":
            return web.Response(body=_rewrite_stream(raw.decode(), fault), content_type="text/event-stream")
        return web.json_response(_rewrite_whole(json.loads(raw), fault))


def _wire_calls(fault: Fault) -> list[dict[str, Any]]:
    calls = []
    for i, call in enumerate(fault.tool_calls or []):
        arguments = call["arguments"] if isinstance(call["arguments"], str) else json.dumps(call["arguments"])
        function = {"name": call["name"], "arguments": arguments}
        calls.append({"id": f"call_{i}", "type": "function", "function": function})
    return calls


def _changed(text: str, fault: Fault) -> tuple[str, str | None]:
    if fault.tool_calls is not None:
        return "", "tool_calls"
    if fault.content is not None:
        return fault.content, None
    assert fault.truncate is not None
    return text[: fault.truncate], "length"


def _rewrite_whole(payload: dict[str, Any], fault: Fault) -> dict[str, Any]:
    choice = payload["choices"][0]
    text, reason = _changed(choice["message"].get("content") or "", fault)
    choice["message"]["content"] = text
    if fault.tool_calls is not None:
        choice["message"]["tool_calls"] = _wire_calls(fault)
    if reason:
        choice["finish_reason"] = reason
    return payload


def _rewrite_stream(raw: str, fault: Fault) -> str:
    parts: list[str] = []
    finish, usage = "stop", None
    for line in raw.splitlines():
        data = line[len("data:") :].strip() if line.startswith("data:") else ""
        if not data or data == "[DONE]":
            continue
        event = json.loads(data)
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            parts.append((choice.get("delta") or {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
    text, reason = _changed("".join(parts), fault)
    events: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}]
    for i, call in enumerate(_wire_calls(fault)):
        # As OpenAI streams them: the first piece names the call, the arguments follow in pieces.
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        first = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
        events.append({"choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]})
        for piece in (arguments[:half], arguments[half:]):
            delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
            events.append({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events += [
        {"choices": [{"index": 0, "delta": {}, "finish_reason": reason or finish}]},
        {"choices": [], "usage": usage},
    ]
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
