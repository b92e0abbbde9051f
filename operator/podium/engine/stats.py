"""Per-agent performance: completed, success rate, latency, quality, recent failures, a recommendation.

Kept in Redis (:mod:`podium.dataplane.perf`) so every run feeds one record and the operator can copy it into the
Agent's status. Reputation (the market's view of an agent) lives in the same record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.api.agent import PerformanceTargets
from podium.dataplane import perf
from podium.dataplane.keys import agent_keys
from podium.dataplane.perf import RECENT, Failure, Outcome, PerfRecord

__all__ = [
    "NO_RECORD",
    "RECENT",
    "REPUTATION_ALPHA",
    "Failure",
    "Outcome",
    "PerfStats",
    "RecentView",
    "StatsStore",
    "next_reputation",
    "parse_recent",
    "parse_stats",
    "recommendation",
]

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
    def recent_success(self) -> float:
        """Success rate over the recent outcomes (the load balancer's window), with the same uniform prior."""
        return (sum(self.recent) + 1) / (len(self.recent) + 2)

    @property
    def avg_ms(self) -> float | None:
        return self.total_ms / self.tasks if self.tasks else None

    @property
    def avg_quality(self) -> float | None:
        return self.quality_sum / self.quality_n if self.quality_n else None


NO_RECORD = PerfStats()  # an agent without a record yet


def recommendation(stats: PerfStats, targets: PerformanceTargets) -> str:
    """The pattern's verdict on an agent's record: the first of its targets it misses (success rate, then average
    time, then quality), else "within acceptable parameters"."""
    if not stats.tasks:
        return "no data yet"
    rate = stats.success_rate or 0.0
    if rate < targets.min_success_rate:
        return (
            f"Agent requires attention - high failure rate (success rate {rate:.0%} < {targets.min_success_rate:.0%})"
        )
    seconds = (stats.avg_ms or 0.0) / 1000.0
    if seconds > targets.max_average_seconds:
        return (
            f"Agent performance is slow - consider optimization (average {seconds:.1f}s > "
            f"{targets.max_average_seconds:g}s)"
        )
    quality = stats.avg_quality
    if quality is not None and quality < targets.min_quality:
        return f"Agent output quality is below threshold (average {quality:.2f} < {targets.min_quality:g})"
    return "Agent performing within acceptable parameters"


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

    async def record(
        self, agent: str, ok: bool, duration_ms: float, quality: float | None, failure: Failure | None = None
    ) -> None:
        pipe = self._redis.pipeline(transaction=True)
        self.queue_record(pipe, agent, ok, duration_ms, quality, failure)
        await pipe.execute()

    def queue_record(
        self,
        pipe: Pipeline,
        agent: str,
        ok: bool,
        duration_ms: float,
        quality: float | None,
        failure: Failure | None = None,
    ) -> None:
        """:meth:`record` as commands on the caller's pipeline."""
        perf.queue_record(pipe, agent_keys(self._namespace, agent), ok, duration_ms, quality, failure)

    async def update_reputation(self, agent: str, ok: bool, quality: float | None) -> float:
        """Fold one outcome into the agent's reputation; concurrent results of parallel auctions all count."""
        return await perf.update_reputation(
            self._redis, agent_keys(self._namespace, agent), lambda current: next_reputation(current, ok, quality)
        )

    def queue_records(self, pipe: Pipeline, agent: str, outcomes: Sequence[Outcome]) -> None:
        """Many outcomes of one agent (oldest first) as a handful of commands on the caller's pipeline."""
        perf.queue_records(pipe, agent_keys(self._namespace, agent), outcomes)

    def queue_recent(self, pipe: Pipeline, agent: str) -> None:
        """The agent's recent outcomes, all that ranking it for a step weighs (:func:`podium.engine.selection.rank`),
        as one command on the caller's pipeline; :func:`parse_recent` takes its reply."""
        perf.queue_read_recent(pipe, agent_keys(self._namespace, agent))

    async def get(self, agent: str) -> PerfStats:
        return (await self.get_many([agent]))[agent]

    async def get_many(self, agents: Sequence[str]) -> dict[str, PerfStats]:
        """Stats of many agents in one round trip (selection ranks every candidate before each dispatch)."""
        return await perf.read_many(self._redis, self._namespace, agents, PerfStats)

    def queue_get_many(self, pipe: Pipeline, agents: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, PerfStats]]:
        """:meth:`get_many` as commands on the caller's pipeline; returns what parses their replies."""
        perf.queue_read_many(pipe, self._namespace, agents)
        return lambda replies: perf.parse_many(agents, replies, PerfStats)


class RecentView:
    """A run's view of its agents' recent outcomes, all that ranking them for a step weighs: read from Redis when
    older than ``max_age`` seconds, with the run's own outcomes added as it records them. A run ranks on what it saw
    its agents do a moment ago at once, on what other runs saw within ``max_age``, and a sequential strategy does not
    read every candidate's list again for every step. Pure: the caller reads and says when."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._seen: dict[str, tuple[float, PerfStats]] = {}  # agent -> (read at, its recent outcomes)

    def due(self, agents: Sequence[str], now: float) -> list[str]:
        """The agents whose outcomes are to be read again (never read, or read more than ``max_age`` ago)."""
        seen = self._seen
        return [a for a in agents if a not in seen or now - seen[a][0] > self.max_age]

    def read(self, agent: str, stats: PerfStats, now: float) -> None:
        """The agent's outcomes as just read from Redis (they hold the run's own, written before the read)."""
        self._seen[agent] = (now, stats)

    def add(self, agent: str, outcomes: Sequence[Outcome]) -> None:
        """The run's own outcomes of ``agent`` (oldest first), as it records them in Redis."""
        seen = self._seen.get(agent)
        if seen is not None:
            newest = tuple(o.ok for o in reversed(outcomes))
            self._seen[agent] = (seen[0], PerfStats(recent=(newest + seen[1].recent)[:RECENT]))

    def stats(self, agent: str) -> PerfStats:
        """The agent's recent outcomes as the run sees them (none if never read)."""
        seen = self._seen.get(agent)
        return seen[1] if seen is not None else NO_RECORD


def parse_stats(raw: Any, recent: Any, failures: Any) -> PerfStats:
    """The stats from the replies of :func:`podium.dataplane.perf.queue_read`."""
    return perf.parse(raw, recent, failures, PerfStats)


def parse_recent(recent: Any) -> PerfStats:
    """Stats holding only the recent outcomes, from the reply of :meth:`StatsStore.queue_recent`."""
    return perf.parse_recent(recent, PerfStats)
