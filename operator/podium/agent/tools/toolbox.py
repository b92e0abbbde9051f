"""The tools an agent offers its model: every tool of its MCP servers (``spec.tools``), by name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from podium.agent.tools.mcp import CallOutcome, ServerConnection, ToolInfo, ToolServerError
from podium.api.tools import Tools, ToolServer, header_env


class ToolboxError(Exception):
    """The agent's tools cannot be offered as configured; the message says what to fix."""


def server_headers(server: ToolServer, env: Mapping[str, str]) -> dict[str, str]:
    """A remote server's headers: literal values, and Secret-held ones from the variables the operator set."""
    if server.http is None:
        return {}
    headers = {}
    for header in server.http.headers:
        if header.value is not None:
            headers[header.name] = header.value
            continue
        variable = header_env(server.name, header.name)
        if variable not in env:
            raise ToolboxError(
                f"tool server {server.name!r}: header {header.name} comes from a Secret, but {variable} is not set "
                f"(the operator sets it in the agent's pods; outside a pod, set it yourself)"
            )
        headers[header.name] = env[variable]
    return headers


def offered(servers: list[ToolServer], listed: Mapping[str, list[ToolInfo]]) -> dict[str, ToolInfo]:
    """The tools the model is offered, by name: each server's listed tools, only those its ``tools`` names if it
    names some. A named tool a server does not list, or a name offered by two servers, is an error (pure)."""
    tools: dict[str, ToolInfo] = {}
    for server in servers:
        available = {t.name: t for t in listed[server.name]}
        wanted = server.tools if server.tools is not None else list(available)
        missing = [name for name in wanted if name not in available]
        if missing:
            raise ToolboxError(
                f"tool server {server.name!r} lists no tool {', '.join(map(repr, missing))} "
                f"(it lists: {', '.join(sorted(available)) or 'none'})"
            )
        for name in wanted:
            if name in tools:
                raise ToolboxError(
                    f"tool {name!r} is offered by both {tools[name].server!r} and {server.name!r}: "
                    f"leave it out of one of them with that server's `tools`"
                )
            tools[name] = available[name]
    return tools


def canonical(tool: str, arguments: Any) -> str:
    """One string per (tool, arguments), whatever the order of the arguments' keys: a repeated call is found."""
    return tool + " " + json.dumps(arguments, sort_keys=True, ensure_ascii=False)


class Toolbox:
    def __init__(self, spec: Tools, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.connections = {s.name: ServerConnection(s, server_headers(s, env)) for s in spec.servers}
        self.tools: dict[str, ToolInfo] = {}

    async def start(self) -> None:
        """Start or reach every server and list their tools; :class:`ToolboxError` naming what failed."""
        names = list(self.connections)
        listed = await asyncio.gather(*(self.connections[n].start() for n in names), return_exceptions=True)
        failed = [str(r) for r in listed if isinstance(r, BaseException)]
        if failed:
            await self.close()
            raise ToolboxError("; ".join(failed))
        self.tools = offered(self.spec.servers, {n: r for n, r in zip(names, listed, strict=True)})  # type: ignore[misc]

    async def call(self, tool: str, arguments: Any) -> tuple[str, CallOutcome]:
        """(server name, outcome) of calling ``tool``; an unknown tool or arguments that are not an object are a
        failed outcome the model reads, not an error."""
        info = self.tools.get(tool)
        if info is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return "", CallOutcome(False, f"there is no tool named {tool!r}; the tools are: {known}", 0.0)
        if not isinstance(arguments, dict):
            return info.server, CallOutcome(False, "the arguments must be a JSON object", 0.0)
        return info.server, await self.connections[info.server].call(tool, arguments)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections.values()), return_exceptions=True)


__all__ = ["ToolServerError", "Toolbox", "ToolboxError", "canonical", "offered", "server_headers"]
