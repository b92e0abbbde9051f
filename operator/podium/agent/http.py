"""The probe and metrics server. It runs in a thread with its own event loop, so that a stuck runtime loop
is reported as 503 on /healthz rather than as a probe timeout."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from podium.agent.health import Health


def make_app(health: Health, registry: CollectorRegistry) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        ok, why = health.live()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def readyz(_: web.Request) -> web.Response:
        ok, why = health.ready()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


class ProbeServer:
    """Start with :meth:`start` (returns once bound, raising if the port is taken); stop with :meth:`stop`."""

    def __init__(self, health: Health, registry: CollectorRegistry, host: str, port: int) -> None:
        self.app = make_app(health, registry)
        self.host = host
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="podium-probes", daemon=True)
        self.runner: web.AppRunner | None = None
        self.bound = threading.Event()
        self.error: BaseException | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._bind())
        except BaseException as exc:  # reported to the starting thread
            self.error = exc
            self.bound.set()
            return
        self.bound.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._cleanup())
        self.loop.close()

    async def _bind(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        # Port 0 (tests): learn which port the OS picked.
        sockets = getattr(site._server, "sockets", None) or []
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]

    async def _cleanup(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def start(self) -> None:
        self.thread.start()
        self.bound.wait(10)
        if self.error is not None:
            raise OSError(f"cannot serve probes on {self.host}:{self.port}: {self.error}") from self.error

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
