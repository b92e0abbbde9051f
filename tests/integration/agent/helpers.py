"""Local stand-ins for remote services the backends talk to: real aiohttp servers on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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


def fake_llm(seen: list[dict[str, Any]]) -> web.Application:
    """An OpenAI-compatible chat endpoint: counts words of the prompt and answers with a JSON review."""

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("Authorization")})
        prompt = body["messages"][-1]["content"]
        words = len(prompt.split())
        content = json.dumps({"quality": 0.75, "words": words, "model": body["model"]})
        return web.json_response(
            {
                "id": "cmpl-1",
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": words, "completion_tokens": 10, "total_tokens": words + 10},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


def echo_service() -> web.Application:
    """A task service: uppercases string input; 500 on input 'boom'."""

    async def handle(request: web.Request) -> web.Response:
        task = await request.json()
        if task["input"] == "boom":
            return web.Response(status=500, text="service exploded")
        return web.json_response(
            {"output": {"upper": str(task["input"]).upper(), "kind": task["kind"]}, "quality": 1.0}
        )

    app = web.Application()
    app.router.add_post("/work", handle)
    return app
