"""Per-agent performance: completed, success rate, latency, quality, recent failures, a recommendation.

Kept in Redis (:mod:`podium.dataplane.perf`) so every run feeds one record and the operator can copy it into the
Agent's status. Reputation (the market's view of an agent) lives in the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane import perf
from podium.dataplane.keys import agent_keys
from podium.dataplane.perf import RECENT, PerfRecord

__all__ = ["RECENT", "REPUTATION_ALPHA", "PerfStats", "StatsStore", "next_reputation", "parse_stats"]

REPUTATION_ALPHA = 0.3  # weight of the newest outcome in the reputation's moving average


@dataclass(frozen=True)
class PerfStats(PerfRecord):
    """An agent's record (completed, failed, latency and quality sums, recent outcomes, reputation) and what it says."""

    @property
    def tasks(self) -> int:
        return self.completed + self.failed

    @property
    def success_rate(self) -> float | None:
        return self.completed / self.tasks if self.tasks else None

    @property
    def expected_success(self) -> float:
        """Success rate with a uniform prior (Laplace), so a new agent scores 0.5 rather than 0 or 1."""
        return (self.completed + 1) / (self.tasks + 2)

    @property
    def avg_ms(self) -> float | None:
        return self.total_ms / self.tasks if self.tasks else None

    @property
    def avg_quality(self) -> float | None:
        return self.quality_sum / self.quality_n if self.quality_n else None

    @property
    def recent_failures(self) -> int:
        return sum(1 for ok in self.recent if not ok)

    @property
    def recommendation(self) -> str:
        if not self.tasks:
            return "no data yet"
        if self.recent_failures >= RECENT // 2:
            return f"unstable: {self.recent_failures} of the last {len(self.recent)} tasks failed; check its backend"
        rate = self.success_rate or 0.0
        if self.tasks >= 5 and rate < 0.8:
            return f"unreliable: success rate {rate:.0%}; add retries or a fallback agent"
        quality = self.avg_quality
        if quality is not None and quality < 0.5:
            return f"low quality: average {quality:.2f}; review its prompt or model"
        return "healthy"


def next_reputation(current: float | None, ok: bool, quality: float | None) -> float:
    """Moving average of outcomes: a success counts its quality (1.0 if unscored), a failure counts 0."""
    outcome = (quality if quality is not None else 1.0) if ok else 0.0
    if current is None:
        current = 0.5
    return (1 - REPUTATION_ALPHA) * current + REPUTATION_ALPHA * outcome


class StatsStore:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace

    async def record(self, agent: str, ok: bool, duration_ms: float, quality: float | None) -> None:
        pipe = self._redis.pipeline(transaction=True)
        self.queue_record(pipe, agent, ok, duration_ms, quality)
        await pipe.execute()

    def queue_record(self, pipe: Pipeline, agent: str, ok: bool, duration_ms: float, quality: float | None) -> None:
        """:meth:`record` as commands on the caller's pipeline."""
        perf.queue_record(pipe, agent_keys(self._namespace, agent), ok, duration_ms, quality)

    async def update_reputation(self, agent: str, ok: bool, quality: float | None) -> float:
        """Fold one outcome into the agent's reputation; concurrent results of parallel auctions all count."""
        return await perf.update_reputation(
            self._redis, agent_keys(self._namespace, agent), lambda current: next_reputation(current, ok, quality)
        )

    async def get(self, agent: str) -> PerfStats:
        return (await self.get_many([agent]))[agent]

    async def get_many(self, agents: Sequence[str]) -> dict[str, PerfStats]:
        """Stats of many agents in one round trip (selection ranks every candidate before each dispatch)."""
        return await perf.read_many(self._redis, self._namespace, agents, PerfStats)

    def queue_get(self, pipe: Pipeline, agent: str) -> None:
        """:meth:`get` as two commands on the caller's pipeline; :func:`parse_stats` takes their two replies."""
        perf.queue_read(pipe, agent_keys(self._namespace, agent))


def parse_stats(raw: Any, recent: Any) -> PerfStats:
    return perf.parse(raw, recent, PerfStats)
