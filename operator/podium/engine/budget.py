"""Hard budgets of one run (timeout, tasks, cost, tokens), checked before every dispatch.

Usage is counted in Redis (:mod:`podium.dataplane.usage`) so a restarted operator resumes the same budget rather
than granting a fresh one: a run cannot escape its limits by crashing the operator. The run is the only writer of
its counters, so it reads them once when it starts and from then on counts in memory what it writes: a check before
a dispatch costs no round trip, and it counts the task at once, so parallel steps cannot all pass the last slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.api.orchestration import Limits
from podium.dataplane.allowance import Allowance
from podium.dataplane.usage import UsageCounters, UsageRecord
from podium.engine.kept import Kept


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


def allowance(limits: Limits, usage: Usage) -> Allowance:
    """What a task dispatched now may spend: the tokens and cost left under the run's limits (pure)."""
    return Allowance(
        tokens=None if limits.max_tokens is None else max(0, limits.max_tokens - usage.tokens),
        cost=None if limits.max_cost is None else max(0.0, limits.max_cost - usage.cost),
    )


class LiveLimits:
    """A run's limits as they are now. They start as the spec's; the operator sets them again when ``spec.limits`` is
    edited while the run runs, and each listener (the budget check, the run's deadline) applies them at once, as
    Kubernetes applies an edit of a running Job's ``activeDeadlineSeconds``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._listeners: list[Callable[[Limits], None]] = []

    def listen(self, listener: Callable[[Limits], None]) -> Callable[[], None]:
        """Call ``listener`` with the limits whenever they change; returns what stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set(self, limits: Limits) -> bool:
        """The limits as edited; False when they are the ones in force already."""
        if limits == self.limits:
            return False
        self.limits = limits
        for listener in list(self._listeners):
            listener(limits)
        return True


class Budget:
    """The run's usage against its limits: started-at (set once), dispatched tasks, cost and tokens of results."""

    def __init__(
        self,
        redis: aioredis.Redis,
        namespace: str,
        name: str,
        uid: str,
        limits: Limits | LiveLimits,
        kept: Kept | None = None,
    ) -> None:
        self._counters = UsageCounters(redis, namespace, name)
        self._uid = uid
        self.live = limits if isinstance(limits, LiveLimits) else LiveLimits(limits)
        self._started: float | None = None  # fixed once start() has run: no read needed for the clock
        # The counters as of start(), plus what this run counted since: kept where the caller can hand them to the
        # next run of the same uid (:mod:`podium.engine.kept`).
        self._kept = kept or Kept()
        self.resumed = False  # start() found the run started before (an operator restart, a takeover)

    @property
    def limits(self) -> Limits:
        """The limits in force now (:class:`LiveLimits`)."""
        return self.live.limits

    async def start(self, now: float) -> float:
        """Record when the run began (first start only, per uid) and return it. Run again with the counters kept
        from before (:mod:`podium.engine.kept`), it writes back what Redis lost of them: its start, and the part of
        each count Redis no longer holds."""
        kept = self._kept.usage
        record = await self._counters.claim(self._uid, kept.started if kept and kept.started else now)
        self._kept.usage = record if kept is None else await self._counters.restore(record, kept)
        self._started = record.started
        assert self._started is not None
        self.resumed = self._started != now
        return self._started

    async def usage(self, now: float) -> Usage:
        return self.usage_of(await self._counters.read(), now)

    def usage_of(self, record: UsageRecord, now: float) -> Usage:
        """The usage at ``now`` from counters read earlier (elapsed time is reckoned from ``now``)."""
        return Usage(
            tasks=record.tasks,
            cost=record.cost,
            tokens=record.tokens,
            elapsed=now - (record.started if record.started is not None else now),
        )

    async def admit(self, now: float) -> Usage:
        """Before a dispatch: raise :class:`BudgetExceeded` if a limit is reached, else count the task (in memory;
        :meth:`queue_dispatch` counts it in Redis) and return the usage it was checked against."""
        known = self._kept.usage
        if known is None:  # not started (a bare context): read what Redis holds
            known = self._kept.usage = await self._counters.read()
        usage = self.usage_of(known, now)
        check(self.limits, usage)
        # Rebuilt, not dataclasses.replace: this runs before every dispatch.
        self._kept.usage = UsageRecord(known.tasks + 1, known.cost, known.tokens, known.started)
        return usage

    def queue_dispatch(self, pipe: Pipeline, count: int = 1) -> None:
        """Count dispatches in Redis, as a command on the caller's pipeline (sent with its other writes)."""
        self._counters.queue_task(pipe, count)

    def queue_result(self, pipe: Pipeline, cost: float, tokens: int) -> None:
        """Add a result's cost and tokens, as commands on the caller's pipeline, and to what the run knows."""
        self._counters.queue_result(pipe, cost, tokens)
        known = self._kept.usage
        if known is not None:
            self._kept.usage = UsageRecord(known.tasks, known.cost + cost, known.tokens + tokens, known.started)

    def queue_restore(self, pipe: Pipeline) -> None:
        """The counters written back where Redis lost them, as commands on the caller's pipeline (mid-run: a count
        Redis started again since the loss stays as it is; tasks whose dispatch is on its way count twice)."""
        if self._kept.usage is not None:
            self._counters.queue_restore(pipe, self._uid, self._kept.usage)

    async def remaining_seconds(self, now: float) -> float:
        if self._started is not None:
            return self.remaining_after_start(now)
        return self.limits.timeout_seconds - (await self.usage(now)).elapsed

    def remaining_after_start(self, now: float) -> float:
        """:meth:`remaining_seconds` of a started budget (no read needed)."""
        assert self._started is not None, "the budget has not started"
        return self.limits.timeout_seconds - (now - self._started)
