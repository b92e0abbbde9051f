"""A run's usage counters in Redis: hash ``OrchestrationKeys.budget`` with the run that owns them (``uid``), when
it started, tasks dispatched, cost and tokens of results. Kept in Redis so a restarted operator resumes the same
budget; the limits and the checks against them are the engine's (:mod:`podium.engine.budget`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.redisutil import text


@dataclass(frozen=True)
class UsageRecord:
    tasks: int = 0
    cost: float = 0.0
    tokens: int = 0
    started: float | None = None  # unix seconds; None before the run's first start


class UsageCounters:
    def __init__(self, redis: aioredis.Redis, namespace: str, name: str) -> None:
        self._redis = redis
        self._key = OrchestrationKeys(namespace, name).budget

    async def claim(self, uid: str, now: float) -> UsageRecord:
        """Make the counters the run ``uid``'s (a new Orchestration of an old name starts from zero), record its
        start once, and return them (its start set)."""
        for attempt in range(2):
            # One round trip when the counters are already the run's or nobody's (the usual case), applied in this
            # order; a second when they were a previous run's of the same name: deleted, then claimed afresh.
            async with self._redis.pipeline(transaction=False) as pipe:
                if attempt:
                    pipe.delete(self._key)
                pipe.hsetnx(self._key, "uid", uid)
                pipe.hsetnx(self._key, "started", repr(now))
                pipe.hgetall(self._key)
                raw = (await pipe.execute())[-1]
            if text((raw or {}).get(b"uid", (raw or {}).get("uid"))) == uid:
                break
        record = self.parse(raw)
        return record if record.started is not None else replace(record, started=now)

    async def restore(self, record: UsageRecord, kept: UsageRecord) -> UsageRecord:
        """Counters as claimed (``record``) brought up to what the run knew before (``kept``): each count Redis holds
        less of (it restarted without its data) gets the difference added; returns the counters now."""
        tasks, cost, tokens = kept.tasks - record.tasks, kept.cost - record.cost, kept.tokens - record.tokens
        if tasks <= 0 and cost <= 0 and tokens <= 0:
            return record
        async with self._redis.pipeline(transaction=False) as pipe:
            if tasks > 0:
                pipe.hincrby(self._key, "tasks", tasks)
            if cost > 0:
                pipe.hincrbyfloat(self._key, "cost", cost)
            if tokens > 0:
                pipe.hincrby(self._key, "tokens", tokens)
            await pipe.execute()
        return replace(
            record,
            tasks=max(kept.tasks, record.tasks),
            cost=max(kept.cost, record.cost),
            tokens=max(kept.tokens, record.tokens),
        )

    def queue_restore(self, pipe: Pipeline, uid: str, known: UsageRecord) -> None:
        """The run's claim and counters written back where Redis lost them (a restart without its data), as commands
        on the caller's pipeline: fields Redis holds again since are left as they are."""
        pipe.hsetnx(self._key, "uid", uid)
        if known.started is not None:
            pipe.hsetnx(self._key, "started", repr(known.started))
        for field, value in (("tasks", known.tasks), ("cost", known.cost), ("tokens", known.tokens)):
            if value:
                pipe.hsetnx(self._key, field, repr(value))

    async def read(self) -> UsageRecord:
        return self.parse(await self._redis.hgetall(self._key))

    def queue_read(self, pipe: Pipeline) -> None:
        """:meth:`read` as a command on the caller's pipeline; :meth:`parse` its reply."""
        pipe.hgetall(self._key)

    @staticmethod
    def parse(raw: Any) -> UsageRecord:
        fields = {text(k): text(v) for k, v in (raw or {}).items()}
        return UsageRecord(
            tasks=int(fields.get("tasks", 0)),
            cost=float(fields.get("cost", 0.0)),
            tokens=int(fields.get("tokens", 0)),
            started=float(fields["started"]) if "started" in fields else None,
        )

    def queue_task(self, pipe: Pipeline, count: int = 1) -> None:
        """Count dispatched tasks, as a command on the caller's pipeline."""
        pipe.hincrby(self._key, "tasks", count)

    def queue_result(self, pipe: Pipeline, cost: float, tokens: int) -> None:
        """Add one result's cost and tokens, as commands on the caller's pipeline (none for a zero: a missing field
        reads as zero)."""
        if cost:
            pipe.hincrbyfloat(self._key, "cost", cost)
        if tokens:
            pipe.hincrby(self._key, "tokens", tokens)
