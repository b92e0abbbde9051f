"""The viewer's HTTP side: GET-only JSON API and the static page (aiohttp). Nothing here writes anywhere.

    GET /                               the page (plain HTML/JS/SVG from ``static/``)
    GET /api/namespaces                 {"namespaces": [...], "default": ns}
    GET /api/runs?namespace=NS          {"namespace", "runs": [run summary...], "now"}
    GET /api/runs/NAME?namespace=NS     the run page's JSON (:func:`podium.viewer.model.run_detail`)
    GET /healthz                        ok

Errors are JSON ``{"error": "..."}`` with 404 (unknown run or namespace), 502 (Kubernetes unreachable or the
viewer's RBAC too narrow) and 405 for any method but GET/HEAD (aiohttp's own answer).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from podium.viewer.model import run_detail, run_list
from podium.viewer.source import NotFound, Source, ViewerError

STATIC = Path(str(resources.files("podium.viewer") / "static"))
# The page loads its own script and style only; nothing inline, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

log = logging.getLogger("podium.viewer")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Viewer:
    source: Source
    clock: Callable[[], float] = time.time


VIEWER = web.AppKey("viewer", Viewer)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def errors_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ViewerError as exc:
        response = _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(exc.status, exc.reason if exc.status != 405 else f"{request.method} not allowed: read-only")
    except Exception:
        log.exception("GET %s failed", request.path)
        response = _error(500, "the viewer failed on this request; its log has the traceback")
    response.headers.update(SECURITY_HEADERS)
    return response


async def _namespace(request: web.Request) -> str:
    asked = request.query.get("namespace")
    if asked:
        return asked
    served = await request.app[VIEWER].source.namespaces()
    if not served:
        raise NotFound("no namespace has Orchestrations yet: give ?namespace=")
    return served[0]


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def namespaces(request: web.Request) -> web.Response:
    served = await request.app[VIEWER].source.namespaces()
    return web.json_response({"namespaces": served, "default": served[0] if served else None})


async def runs(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    viewer = request.app[VIEWER]
    objs = await viewer.source.runs(namespace)
    now = viewer.clock()
    return web.json_response({"namespace": namespace, "runs": run_list(objs, now), "now": now})


async def run(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    viewer = request.app[VIEWER]
    data = await viewer.source.run(namespace, request.match_info["name"])
    body: dict[str, Any] = run_detail(data, viewer.clock())
    return web.json_response(body, dumps=_dumps)


def _dumps(value: Any) -> str:
    # The page's JSON.parse refuses NaN and Infinity; outputs are JSON already, so none should be here.
    return json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def make_app(source: Source, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(middlewares=[errors_and_headers])
    app[VIEWER] = Viewer(source, clock)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/namespaces", namespaces)
    app.router.add_get("/api/runs", runs)
    app.router.add_get("/api/runs/{name}", run)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)

    async def close_source(app: web.Application) -> None:
        await app[VIEWER].source.close()

    app.on_cleanup.append(close_source)
    return app
