"""An MCP server for the tool tests, written with the official SDK's ``MCPServer``: tools that count, fail, hang,
and crash the server. Runs on stdio (``python -m tests.support.mcp_server``) or over Streamable HTTP
(``--http PORT``; with ``--token T`` every request must carry ``Authorization: Bearer T``, else 401).

Its ``calls`` tool answers how many calls this process has served, so a test sees a restarted server start over.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("podium-test-tools")
served = {"calls": 0}


@server.tool()
def word_count(text: str) -> int:
    """Count the words of a text."""
    served["calls"] += 1
    return len(text.split())


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    served["calls"] += 1
    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
async def sleep(seconds: float) -> str:
    """Waits that many seconds, then says so."""
    served["calls"] += 1
    await asyncio.sleep(seconds)
    return f"slept {seconds:g}s"


@server.tool()
def crash() -> str:
    """Ends the server process at once, without answering."""
    os._exit(3)


@server.tool()
def calls() -> int:
    """How many calls this server process has served, this one included."""
    served["calls"] += 1
    return served["calls"]


def require_token(app: Any, token: str) -> Any:
    """An ASGI app that answers 401 to any HTTP request without ``Authorization: Bearer <token>``."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            if headers.get("authorization") != f"Bearer {token}":
                await send(
                    {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve Streamable HTTP on 127.0.0.1:PORT (default: stdio)")
    parser.add_argument("--token", help="with --http: the bearer token every request must carry")
    args = parser.parse_args()
    if args.http is None:
        server.run()
        return
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    if args.token:
        app = require_token(app, args.token)
    uvicorn.run(app, host="127.0.0.1", port=args.http, log_level="warning")


if __name__ == "__main__":
    main()
