"""One MCP server of an agent, through the official MCP Python SDK (``mcp.Client``): a stdio child process or a
remote server over Streamable HTTP.

The SDK's client lives in anyio task groups and cancel scopes, which must be entered and left by the same task: so
each connection is owned by a task of its own that opens the client, lists the tools, and holds the client open
until it is closed, while tasks call tools on it from anywhere. A connection that dies (the server process exits,
the remote drops the session) is reopened at the next call, once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from podium.api.tools import ToolServer

log = logging.getLogger("podium.agent.tools")

CONNECT_TIMEOUT_SECONDS = 60.0  # starting a server (a Python one imports for seconds on a busy node) and listing
CLOSE_TIMEOUT_SECONDS = 5.0
MAX_TOOL_PAGES = 20  # tools/list pages read; a server offering more is cut there


class ToolServerError(Exception):
    """The server cannot be reached or started; the message names it and says why."""


@dataclass(frozen=True)
class ToolInfo:
    """A tool as the server lists it."""

    server: str
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class CallOutcome:
    """What a call gave: the text the model is shown, and whether the call succeeded."""

    ok: bool
    text: str
    seconds: float


def result_text(content: list[Any], structured: Any) -> str:
    """A tool result as text: its text parts, else its structured content as JSON; other parts are named, not
    inlined (an image is no use to a text model)."""
    import json

    parts = []
    for item in content or []:
        kind = getattr(item, "type", None)
        if kind == "text":
            parts.append(str(getattr(item, "text", "")))
        elif kind == "resource" and getattr(getattr(item, "resource", None), "text", None) is not None:
            parts.append(str(item.resource.text))
        else:
            parts.append(f"[{kind or 'unknown'} content omitted]")
    if not any(p.strip() for p in parts) and structured is not None:
        return json.dumps(structured, ensure_ascii=False)
    return "\n".join(parts)


class ServerConnection:
    """One MCP server, opened by :meth:`start` and held open by its own task until :meth:`close`."""

    def __init__(self, spec: ToolServer, headers: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.headers = dict(headers or {})
        self.client: Any = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    def describe(self) -> str:
        if self.spec.stdio is not None:
            return f"tool server {self.name!r} (stdio: {self.spec.stdio.command})"
        assert self.spec.http is not None
        return f"tool server {self.name!r} ({self.spec.http.url})"

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        from mcp import Client, StdioServerParameters
        from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

        if self.spec.stdio is not None:
            stdio = self.spec.stdio
            params = StdioServerParameters(command=stdio.command, args=stdio.args, env=stdio.env, cwd=stdio.working_dir)
            async with Client(params) as client:
                yield client
            return
        assert self.spec.http is not None
        async with create_mcp_http_client(headers=self.headers) as http:
            async with Client(streamable_http_client(self.spec.http.url, http_client=http)) as client:
                yield client

    async def start(self) -> list[ToolInfo]:
        """Open the connection and list the server's tools; :class:`ToolServerError` if it cannot."""
        self._stop = asyncio.Event()
        ready: asyncio.Future[list[ToolInfo]] = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(ready), name=f"mcp-{self.name}")
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                return await asyncio.shield(ready)
        except TimeoutError:
            await self.close()
            raise ToolServerError(f"{self.describe()}: no answer within {CONNECT_TIMEOUT_SECONDS:g}s") from None

    async def _own(self, ready: asyncio.Future[list[ToolInfo]]) -> None:
        try:
            async with self._open() as client:
                tools = await self._list(client)
                self.client = client
                if not ready.done():
                    ready.set_result(tools)
                await self._stop.wait()
        except BaseException as exc:  # the SDK raises ExceptionGroups from its task groups
            if not ready.done():
                ready.set_exception(ToolServerError(f"{self.describe()}: cannot connect: {_reason(exc)}"))
            elif not self._stop.is_set():
                log.warning(f"{self.describe()} closed: {_reason(exc)}; it is reopened at the next call")
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.client = None

    async def _list(self, client: Any) -> list[ToolInfo]:
        tools: list[ToolInfo] = []
        cursor = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
                tools.append(ToolInfo(self.name, tool.name, tool.description or "", schema or {"type": "object"}))
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    async def _connected(self) -> Any:
        """The open client, reopening a connection that died since the last call."""
        if self.client is not None:
            return self.client
        async with self._lock:
            if self.client is None:
                await self.close()
                await self.start()
        return self.client

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallOutcome:
        """Call ``tool``; every failure (the tool's own error, a timeout, a lost server) is an outcome with ok
        False and the reason, for the model to read."""
        started = time.monotonic()
        timeout = float(self.spec.timeout_seconds)
        try:
            async with asyncio.timeout(timeout):
                client = await self._connected()
                result = await client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            return CallOutcome(False, f"the call timed out after {timeout:g}s", time.monotonic() - started)
        except ToolServerError as exc:
            return CallOutcome(False, f"the tool server is unavailable: {exc}", time.monotonic() - started)
        except Exception as exc:
            if _connection_lost(exc):
                # The server went away (its process exited, the remote dropped us): the next call reopens it.
                await self.close()
                return CallOutcome(
                    False, f"the tool server closed the connection: {_reason(exc)}", time.monotonic() - started
                )
            return CallOutcome(False, _reason(exc), time.monotonic() - started)
        text = result_text(result.content, result.structured_content)
        return CallOutcome(not result.is_error, text, time.monotonic() - started)

    async def close(self) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(owner), CLOSE_TIMEOUT_SECONDS)
        except (TimeoutError, Exception):
            owner.cancel()
            with contextlib.suppress(BaseException):
                await owner


def _connection_lost(exc: BaseException) -> bool:
    import anyio
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED
    return isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream)


def _reason(exc: BaseException) -> str:
    """The innermost message of an error the SDK may have wrapped in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
