"""Retry backoff and the per-agent circuit breaker: pure state machines, kept in Redis by the data plane."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis

from podium.api.agent import Backoff, CircuitBreaker
from podium.dataplane import breakers

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "halfOpen"  # the spelling of podium.api.BreakerState, so status can copy it verbatim


EXPONENTIAL = "exponential"
LINEAR = "linear"


def backoff_delay(
    retry: int, backoff: Backoff, rng: random.Random | None = None, *, policy: str = EXPONENTIAL
) -> float:
    """Seconds to wait before retry number ``retry`` (1 = first retry) by ``policy`` (``resilience.retry.policy``).

    Exponential: ``initialSeconds x factor^(retry-1)``; linear: ``initialSeconds x retry``; both capped at
    ``maxSeconds``. With jitter the delay is drawn uniformly from [cap/2, cap] ("equal jitter"): retries of many
    tasks spread out, yet no retry comes sooner than half the planned wait.
    """
    if retry < 1:
        raise ValueError(f"retry numbers start at 1, got {retry}")
    if policy == EXPONENTIAL:
        planned = backoff.initial_seconds * backoff.factor ** (retry - 1)
    elif policy == LINEAR:
        planned = backoff.initial_seconds * retry
    else:
        raise ValueError(f"unknown retry policy {policy!r}; expected {EXPONENTIAL} or {LINEAR}")
    cap = min(backoff.max_seconds, planned)
    if not backoff.jitter:
        return cap
    return (rng or random).uniform(cap / 2, cap)


@dataclass(frozen=True)
class Breaker:
    """One agent's circuit breaker. Times are wall-clock so every operator replica agrees.

    ``opened_at`` is when it last opened; ``probe_at`` when the current half-open probe went out. Half-open
    admits no other task while its probe is out, but a probe that never reports (its run died) only holds the
    breaker for one recovery timeout: then the next dispatch becomes the probe.
    """

    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe_at: float = 0.0

    def allows(self, now: float, config: CircuitBreaker) -> bool:
        """May a task go to this agent now? Open and half-open admit one probe per recovery timeout."""
        if self.state == CLOSED:
            return True
        since = self.opened_at if self.state == OPEN else self.probe_at
        return now - since >= config.recovery_timeout_seconds

    def before_dispatch(self, now: float, config: CircuitBreaker) -> Breaker:
        """The breaker once a task is dispatched at ``now``: that task is the probe if it is not closed."""
        if self.state != CLOSED and self.allows(now, config):
            return replace(self, state=HALF_OPEN, probe_at=now)
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

    def on_result(self, ok: bool, now: float, config: CircuitBreaker) -> Breaker:
        return self.on_success() if ok else self.on_failure(now, config)


def parse_breaker(raw: Any) -> Breaker:
    return breakers.decode(raw, Breaker)


class BreakerStore(breakers.BreakerRecords[Breaker]):
    """Breakers kept in Redis, so the operator can show them in Agent status and every run shares them.

    Every change is a compare-and-set around the pure :class:`Breaker` steps, so concurrent failures from parallel
    tasks or other runs all count and only one dispatch becomes the probe.
    """

    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        super().__init__(redis, namespace, Breaker)

    async def admit(self, agent: str, now: float, config: CircuitBreaker, *, seen: Breaker | None = None) -> bool:
        """May a task go to ``agent`` at ``now``? If the breaker is open or half-open, True for one caller only:
        the probe, recorded with its time."""
        before, _ = await self.update(agent, lambda b: b.before_dispatch(now, config), seen=seen)
        return before.allows(now, config)

    async def record(
        self, agent: str, ok: bool, now: float, config: CircuitBreaker, *, seen: Breaker | None = None
    ) -> Breaker:
        """Count one task outcome (success closes, error or silence counts a failure); the new breaker."""
        _, after = await self.update(agent, lambda b: b.on_result(ok, now, config), seen=seen)
        return after
