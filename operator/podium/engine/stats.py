"""Per-agent performance: completed, success rate, latency, quality, recent failures, a recommendation.

Kept in Redis under the agent's hash tag so every run feeds one record and the operator can copy it into the
Agent's status. Reputation (the market's view of an agent) lives in the same hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane.redisutil import text, watched_update

RECENT = 10  # outcomes remembered for "recent failures"
REPUTATION_ALPHA = 0.3  # weight of the newest outcome in the reputation's moving average


@dataclass(frozen=True)
class PerfStats:
    completed: int = 0
    failed: int = 0
    total_ms: float = 0.0
    quality_sum: float = 0.0
    quality_n: int = 0
    recent: tuple[bool, ...] = ()  # newest first
    reputation: float | None = None

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


def stats_key(namespace: str, agent: str) -> str:
    return f"podium:{{{namespace}/{agent}}}:stats"


def recent_key(namespace: str, agent: str) -> str:
    return f"podium:{{{namespace}/{agent}}}:recent"


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
        key, recent = stats_key(self._namespace, agent), recent_key(self._namespace, agent)
        pipe.hincrby(key, "completed" if ok else "failed", 1)
        pipe.hincrbyfloat(key, "total_ms", duration_ms)
        if quality is not None:
            pipe.hincrbyfloat(key, "quality_sum", quality)
            pipe.hincrby(key, "quality_n", 1)
        pipe.lpush(recent, "1" if ok else "0")
        pipe.ltrim(recent, 0, RECENT - 1)

    async def update_reputation(self, agent: str, ok: bool, quality: float | None) -> float:
        """Fold one outcome into the agent's reputation; concurrent results of parallel auctions all count."""
        key = stats_key(self._namespace, agent)

        async def load(pipe: Pipeline) -> float | None:
            raw = await pipe.hget(key, "reputation")
            return None if raw is None else float(text(raw))

        _, value = await watched_update(
            self._redis,
            key,
            load,
            lambda current: next_reputation(current, ok, quality),
            lambda pipe, new: pipe.hset(key, "reputation", repr(new)),
        )
        return cast(float, value)  # step is next_reputation, which always returns a number

    async def get(self, agent: str) -> PerfStats:
        return (await self.get_many([agent]))[agent]

    async def get_many(self, agents: Sequence[str]) -> dict[str, PerfStats]:
        """Stats of many agents in one round trip (selection ranks every candidate before each dispatch)."""
        if not agents:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                self.queue_get(pipe, agent)
            replies = await pipe.execute()
        return {agent: parse_stats(replies[2 * i], replies[2 * i + 1]) for i, agent in enumerate(agents)}

    def queue_get(self, pipe: Pipeline, agent: str) -> None:
        """:meth:`get` as two commands on the caller's pipeline; :func:`parse_stats` takes their two replies."""
        pipe.hgetall(stats_key(self._namespace, agent))
        pipe.lrange(recent_key(self._namespace, agent), 0, -1)


def parse_stats(raw: Any, recent: Any) -> PerfStats:
    f = {text(k): text(v) for k, v in (raw or {}).items()}
    return PerfStats(
        completed=int(f.get("completed", 0)),
        failed=int(f.get("failed", 0)),
        total_ms=float(f.get("total_ms", 0.0)),
        quality_sum=float(f.get("quality_sum", 0.0)),
        quality_n=int(f.get("quality_n", 0)),
        recent=tuple(text(r) == "1" for r in recent or []),
        reputation=float(f["reputation"]) if "reputation" in f else None,
    )
