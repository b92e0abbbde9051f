"""Service ClusterIPs on loopback: a small asyncio TCP proxy per service port, to the ready pods it selects.

Kubernetes refuses loopback addresses in Endpoints, so the node computes endpoints itself from the pods it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
log = logging.getLogger("podium.node.services")
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


@dataclass(frozen=True)
class PodView:
    """What endpoint selection needs to know about a pod."""

    namespace: str
    labels: dict[str, str]
    ip: str
    ready: bool
    containers: list[Obj]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def target_port(port: Obj, pod: PodView) -> int | None:
    tp: int | str = port.get("targetPort") or port["port"]
    if isinstance(tp, int) or str(tp).isdigit():
        return int(tp)
    for c in pod.containers:
        for p in c.get("ports") or []:
            if p.get("name") == tp:
                return int(p["containerPort"])
    return None


Key = tuple[str, int]  # (clusterIP, port)


def desired_routes(services: Iterable[Obj], pods: Iterable[PodView]) -> dict[Key, list[tuple[str, int]]]:
    """ClusterIP:port -> ready backends (ip, port). Only TCP ports of selector services on loopback ClusterIPs."""
    pods = list(pods)
    routes: dict[Key, list[tuple[str, int]]] = {}
    for svc in services:
        spec, ns = svc.get("spec", {}), svc["metadata"]["namespace"]
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or ipaddress.ip_address(ip) not in LOOPBACK:
            continue
        selector = spec.get("selector") or {}
        if not selector:
            continue  # selector-less services (e.g. `kubernetes`) are handled elsewhere or not at all
        for port in spec.get("ports") or []:
            if port.get("protocol", "TCP") != "TCP":
                continue
            backends = []
            for p in pods:
                if p.namespace == ns and p.ready and selects(selector, p.labels):
                    tp = target_port(port, p)
                    if tp is not None:
                        backends.append((p.ip, tp))
            routes[(ip, int(port["port"]))] = sorted(backends)
    return routes


@dataclass
class _Listener:
    server: asyncio.Server
    backends: list[tuple[str, int]]
    rr: Iterator[int] = field(default_factory=itertools.count)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


class ServiceProxy:
    """Keeps one listening socket per ClusterIP:port and forwards each connection to a ready backend."""

    def __init__(self) -> None:
        self._listeners: dict[Key, _Listener] = {}
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def routes(self) -> dict[Key, list[tuple[str, int]]]:
        return {k: list(v.backends) for k, v in self._listeners.items()}

    async def apply(self, routes: dict[Key, list[tuple[str, int]]]) -> None:
        for key in list(self._listeners):
            if key not in routes:
                lst = self._listeners.pop(key)
                lst.server.close()
        for key, backends in routes.items():
            if key in self._listeners:
                self._listeners[key].backends = backends
                continue
            try:
                server = await asyncio.start_server(self._handler(key), key[0], key[1], reuse_address=True)
            except OSError as e:
                log.warning("service %s:%d: cannot listen: %s", key[0], key[1], e)
                continue
            self._listeners[key] = _Listener(server, backends)

    def _handler(self, key: Key) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._conns.add(task)
            try:
                await self._forward(key, reader, writer)
            finally:
                if task is not None:
                    self._conns.discard(task)

        return handle

    async def _forward(self, key: Key, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lst = self._listeners.get(key)
        backends = list(lst.backends) if lst else []
        upstream = None
        if lst is not None and backends:
            start = next(lst.rr)
            for i in range(len(backends)):
                host, port = backends[(start + i) % len(backends)]
                try:
                    upstream = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=3)
                    break
                except (OSError, TimeoutError):
                    continue
        if upstream is None:
            writer.close()  # no ready endpoint: refuse like kube-proxy's REJECT
            return
        ur, uw = upstream
        try:
            await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))
        finally:
            uw.close()
            writer.close()

    async def close(self) -> None:
        for lst in self._listeners.values():
            lst.server.close()
        self._listeners.clear()
        for t in list(self._conns):
            t.cancel()
