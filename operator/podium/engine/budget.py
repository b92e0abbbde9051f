"""Hard budgets of one run (timeout, tasks, cost, tokens), checked before every dispatch.

Usage is counted in Redis under the orchestration's hash tag so a restarted operator resumes the same budget
rather than granting a fresh one: a run cannot escape its limits by crashing the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.api.orchestration import Limits
from podium.dataplane.redisutil import text


class BudgetExceeded(Exception):
    """A hard limit of the orchestration was reached; the run stops with this as its reason."""

    def __init__(self, limit: str, used: float, allowed: float) -> None:
        self.limit = limit
        self.used = used
        self.allowed = allowed
        super().__init__(f"budget exceeded: {limit} used {used:g} of {allowed:g}")


@dataclass
class Usage:
    tasks: int = 0
    cost: float = 0.0
    tokens: int = 0
    elapsed: float = 0.0


def check(limits: Limits, usage: Usage) -> None:
    """Raise :class:`BudgetExceeded` when one more task would break a limit (pure)."""
    if usage.elapsed >= limits.timeout_seconds:
        raise BudgetExceeded("timeoutSeconds", round(usage.elapsed, 3), limits.timeout_seconds)
    if usage.tasks >= limits.max_tasks:
        raise BudgetExceeded("maxTasks", usage.tasks, limits.max_tasks)
    if limits.max_cost is not None and usage.cost >= limits.max_cost:
        raise BudgetExceeded("maxCost", usage.cost, limits.max_cost)
    if limits.max_tokens is not None and usage.tokens >= limits.max_tokens:
        raise BudgetExceeded("maxTokens", usage.tokens, limits.max_tokens)


def budget_key(namespace: str, name: str) -> str:
    return f"podium:{{{namespace}/{name}}}:budget"


class Budget:
    """The run's usage in Redis: started-at (set once), dispatched tasks, cost and tokens of results."""

    def __init__(self, redis: aioredis.Redis, namespace: str, name: str, uid: str, limits: Limits) -> None:
        self._redis = redis
        self._key = budget_key(namespace, name)
        self._uid = uid
        self.limits = limits
        self._started: float | None = None  # fixed once start() has run: no read needed for the clock

    async def start(self, now: float) -> float:
        """Record when the run began (first start only, per uid) and return it."""
        owner = await self._redis.hget(self._key, "uid")
        if owner is not None and text(owner) != self._uid:
            # A new Orchestration with the same name: the old run's usage is not ours.
            await self._redis.delete(self._key)
        await self._redis.hsetnx(self._key, "uid", self._uid)
        await self._redis.hsetnx(self._key, "started", repr(now))
        started = await self._redis.hget(self._key, "started")
        self._started = float(text(started)) if started is not None else now
        return self._started

    async def usage(self, now: float) -> Usage:
        raw = await self._redis.hgetall(self._key)
        fields = {text(k): text(v) for k, v in raw.items()}
        return Usage(
            tasks=int(fields.get("tasks", 0)),
            cost=float(fields.get("cost", 0.0)),
            tokens=int(fields.get("tokens", 0)),
            elapsed=now - float(fields.get("started", now)),
        )

    async def check(self, now: float) -> None:
        check(self.limits, await self.usage(now))

    async def count_dispatch(self) -> None:
        await self._redis.hincrby(self._key, "tasks", 1)

    def queue_dispatch(self, pipe: Pipeline) -> None:
        """:meth:`count_dispatch` as a command on the caller's pipeline (sent with its other writes)."""
        pipe.hincrby(self._key, "tasks", 1)

    async def count_result(self, cost: float, tokens: int) -> None:
        pipe = self._redis.pipeline(transaction=True)
        self.queue_result(pipe, cost, tokens)
        await pipe.execute()

    def queue_result(self, pipe: Pipeline, cost: float, tokens: int) -> None:
        pipe.hincrbyfloat(self._key, "cost", cost)
        pipe.hincrby(self._key, "tokens", tokens)

    async def remaining_seconds(self, now: float) -> float:
        if self._started is not None:
            return self.limits.timeout_seconds - (now - self._started)
        return self.limits.timeout_seconds - (await self.usage(now)).elapsed
