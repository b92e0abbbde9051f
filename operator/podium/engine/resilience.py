"""Retry backoff and the per-agent circuit breaker: pure state machines, plus their Redis store."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.api.agent import Backoff, CircuitBreaker

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "halfOpen"  # the spelling of podium.api.BreakerState, so status can copy it verbatim


def backoff_delay(retry: int, backoff: Backoff, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (1 = first retry).

    Exponential, capped at ``maxSeconds``; with jitter the delay is drawn uniformly from [cap/2, cap] ("equal
    jitter"): retries of many tasks spread out, yet no retry comes sooner than half the planned wait.
    """
    if retry < 1:
        raise ValueError(f"retry numbers start at 1, got {retry}")
    cap = min(backoff.max_seconds, backoff.initial_seconds * backoff.factor ** (retry - 1))
    if not backoff.jitter:
        return cap
    return (rng or random).uniform(cap / 2, cap)


@dataclass(frozen=True)
class Breaker:
    """One agent's circuit breaker. ``opened_at`` is a wall-clock time so every operator replica agrees."""

    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0

    def allows(self, now: float, config: CircuitBreaker) -> bool:
        """May a task go to this agent now? An open breaker lets one probe through after the recovery timeout."""
        if self.state != OPEN:
            return True
        return now - self.opened_at >= config.recovery_timeout_seconds

    def before_dispatch(self, now: float, config: CircuitBreaker) -> Breaker:
        if self.state == OPEN and self.allows(now, config):
            return replace(self, state=HALF_OPEN)
        return self

    def on_success(self) -> Breaker:
        return Breaker()

    def on_failure(self, now: float, config: CircuitBreaker) -> Breaker:
        if self.state == HALF_OPEN:
            # The probe failed: back to open for another full recovery timeout.
            return Breaker(state=OPEN, failures=self.failures + 1, opened_at=now)
        failures = self.failures + 1
        if failures >= config.failure_threshold:
            return Breaker(state=OPEN, failures=failures, opened_at=now)
        return replace(self, failures=failures)


def breaker_key(namespace: str, agent: str) -> str:
    # Same hash tag as the agent's other keys, so a Redis Cluster keeps them on one slot.
    return f"podium:{{{namespace}/{agent}}}:breaker"


def parse_breaker(raw: Any) -> Breaker:
    if raw is None:
        return Breaker()
    data: dict[str, Any] = json.loads(raw)
    return Breaker(**data)


class BreakerStore:
    """Breakers kept in Redis, so the operator can show them in Agent status and every run shares them."""

    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace

    async def load(self, agent: str) -> Breaker:
        return parse_breaker(await self._redis.get(breaker_key(self._namespace, agent)))

    def queue_load(self, pipe: Pipeline, agent: str) -> None:
        """:meth:`load` as a command on the caller's pipeline; :func:`parse_breaker` its reply."""
        pipe.get(breaker_key(self._namespace, agent))

    async def save(self, agent: str, breaker: Breaker) -> None:
        await self._redis.set(breaker_key(self._namespace, agent), json.dumps(asdict(breaker)))
