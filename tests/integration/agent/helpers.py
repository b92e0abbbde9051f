"""Local stand-ins for remote services the backends talk to: real aiohttp servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def echo_service() -> web.Application:
    """A task service: uppercases string input; 500 on input 'boom'; input 'schema' answers the task's schema;
    input 'context' answers the shared state it was told and writes `n` + 1."""

    async def handle(request: web.Request) -> web.Response:
        task = await request.json()
        if task["input"] == "boom":
            return web.Response(status=500, text="service exploded")
        if task["input"] == "schema":
            return web.json_response({"schemaSeen": task["output_schema"]})
        if task["input"] == "context":  # answers what it was told, and writes back through an envelope
            seen = task["context"]["blackboard"]["values"]
            return web.json_response({"output": seen, "stateUpdates": {"n": seen["n"]["value"] + 1}})
        return web.json_response(
            {"output": {"upper": str(task["input"]).upper(), "kind": task["kind"]}, "quality": 1.0}
        )

    app = web.Application()
    app.router.add_post("/work", handle)
    return app
