"""Probe state shared between the runtime loop and the HTTP thread. Pure logic: decisions take `now`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Health:
    stall_seconds: float
    last_tick: float = field(default_factory=time.monotonic)
    redis_ok: bool = False
    backend_ready: bool = False
    backend_problem: str | None = None  # why its backend's upstream takes no requests now (see AgentRuntime)
    backend_checked: bool = True  # False until a probed backend's upstream first answered a probe, or failed it
    draining: bool = False
    maintenance: bool = False

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def live(self, now: float | None = None) -> tuple[bool, str]:
        """Alive while the event loop keeps ticking; a loop blocked by a sync call is stuck and needs a restart."""
        age = (time.monotonic() if now is None else now) - self.last_tick
        if age > self.stall_seconds:
            return False, f"event loop stalled for {age:.1f}s (limit {self.stall_seconds:g}s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready only when it would accept work: Redis reachable, backend ready, not draining or in maintenance."""
        if self.draining:
            return False, "draining: shutting down"
        if self.maintenance:
            return False, "maintenance: finishing in-flight work, accepting nothing new"
        if not self.backend_ready:
            return False, "backend not ready"
        if not self.backend_checked:
            return False, "backend not checked yet: its first probe has not answered"
        if self.backend_problem is not None:
            return False, f"backend unavailable: {self.backend_problem}"
        if not self.redis_ok:
            return False, "redis unreachable"
        return True, "ok"
