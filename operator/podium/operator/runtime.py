"""The operator's live connections, created at kopf start-up and shared by the handler modules."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from podium.operator.agents.reconcile import AgentReconciler
from podium.operator.kube import Kube
from podium.operator.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    redis: aioredis.Redis
    agents: AgentReconciler


_current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def get() -> Runtime:
    if _current is None:
        raise RuntimeError("the operator runtime is not started (kopf start-up handler has not run)")
    return _current
