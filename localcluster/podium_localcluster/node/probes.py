"""Startup, readiness and liveness probes: httpGet, tcpSocket and exec, with the kubelet's counting rules."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

Obj = dict[str, Any]


@dataclass
class ProbeSpec:
    handler: Obj
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def parse(cls, probe: Obj) -> ProbeSpec:
        handler = {k: v for k, v in probe.items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}
        if len(handler) != 1:
            raise ValueError(f"probe needs exactly one of httpGet, tcpSocket, exec (got {sorted(handler)})")
        return cls(
            handler=handler,
            initial_delay=float(probe.get("initialDelaySeconds", 0)),
            period=float(probe.get("periodSeconds", 10)),
            timeout=float(probe.get("timeoutSeconds", 1)),
            success_threshold=int(probe.get("successThreshold", 1)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
        )


@dataclass
class ProbeCounter:
    """Consecutive results -> verdict, so one flaky result does not flip readiness or kill a container."""

    spec: ProbeSpec
    successes: int = 0
    failures: int = 0
    healthy: bool | None = None  # None until the thresholds decide

    def record(self, ok: bool) -> bool | None:
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.spec.success_threshold:
                self.healthy = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.spec.failure_threshold:
                self.healthy = False
        return self.healthy


def resolve_port(port: int | str, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"named port {port!r} not found in container {container.get('name')!r}")


async def run_probe(
    spec: ProbeSpec, container: Obj, pod_ip: str, exec_argv: list[str] | None = None, env: dict[str, str] | None = None
) -> bool:
    """One probe attempt. `exec_argv` is the full argv (already wrapped to enter the pod) for exec probes."""
    h = spec.handler
    try:
        if "httpGet" in h:
            g = h["httpGet"]
            host = g.get("host") or pod_ip
            scheme = g.get("scheme", "HTTP").lower()
            url = f"{scheme}://{host}:{resolve_port(g['port'], container)}{g.get('path', '/')}"
            headers = {x["name"]: x["value"] for x in g.get("httpHeaders") or []}
            async with (
                aiohttp.ClientSession() as s,
                s.get(url, headers=headers, ssl=False, timeout=aiohttp.ClientTimeout(total=spec.timeout)) as r,
            ):
                return 200 <= r.status < 400
        if "tcpSocket" in h:
            t = h["tcpSocket"]
            fut = asyncio.open_connection(t.get("host") or pod_ip, resolve_port(t["port"], container))
            _, writer = await asyncio.wait_for(fut, timeout=spec.timeout)
            writer.close()
            return True
        if "exec" in h:
            if not exec_argv:
                return False
            proc = await asyncio.create_subprocess_exec(
                *exec_argv,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            try:
                return await asyncio.wait_for(proc.wait(), timeout=spec.timeout) == 0
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False
        return False  # grpc: not supported by the node, counts as failure
    except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
        return False
