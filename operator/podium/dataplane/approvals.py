"""Approvals of one run: which steps wait for a person, and the decisions (hash ``OrchestrationKeys.approvals``).

The record outlives the process that waits on it: after an operator restart the run reaches the same step again
(its journal replays the steps before), finds the record still Waiting with its original deadline, and waits on.
The first decision wins; later ones change nothing. A decision may come before the request (a GitOps user
approving a step in the manifest): the request then finds it made.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.redisutil import text, watched_update

WAITING, APPROVED, REJECTED, TIMED_OUT = "Waiting", "Approved", "Rejected", "TimedOut"
DECISIONS = (APPROVED, REJECTED, TIMED_OUT)
RESULT_STEP = "result"  # the final result's approval


@dataclass(frozen=True)
class ApprovalRecord:
    step: str
    state: str  # Waiting | Approved | Rejected | TimedOut
    requested_at: float | None = None
    deadline: float | None = None
    decided_at: float | None = None
    by: str | None = None
    comment: str | None = None
    summary: str | None = None
    told: bool = False  # the decision is on the run's stream (approval.decided), once

    @property
    def decided(self) -> bool:
        return self.state in DECISIONS


def requested(
    existing: ApprovalRecord | None, step: str, now: float, timeout: float | None, summary: str | None
) -> ApprovalRecord:
    """The record once the run asks for ``step``'s approval: a request made before stays as it was (its deadline
    too); a decision made before the request is kept."""
    if existing is not None and existing.requested_at is not None:
        return existing
    deadline = None if timeout is None else now + timeout
    if existing is not None:
        return replace(existing, requested_at=now, deadline=deadline, summary=summary)
    return ApprovalRecord(step, WAITING, now, deadline, summary=summary)


def decided(
    existing: ApprovalRecord | None, step: str, state: str, now: float, by: str, comment: str | None
) -> ApprovalRecord:
    """The record once ``state`` is decided for ``step``: the first decision wins."""
    if state not in DECISIONS:
        raise ValueError(f"a decision is one of {', '.join(DECISIONS)}, got {state!r}")
    if existing is not None and existing.decided:
        return existing
    base = existing or ApprovalRecord(step, WAITING)
    return replace(base, state=state, decided_at=now, by=by, comment=comment)


def _decode(raw: Any) -> ApprovalRecord | None:
    return None if raw is None else ApprovalRecord(**json.loads(text(raw)))


def _encode(record: ApprovalRecord) -> str:
    return json.dumps(asdict(record), sort_keys=True)


class ApprovalStore:
    def __init__(self, redis: aioredis.Redis, namespace: str, name: str, uid: str) -> None:
        self.redis = redis
        self.key = OrchestrationKeys(namespace, name).approvals(uid)

    async def get(self, step: str) -> ApprovalRecord | None:
        return _decode(await self.redis.hget(self.key, step))

    async def all(self) -> list[ApprovalRecord]:
        raw = await self.redis.hgetall(self.key)
        records = [r for r in (_decode(v) for v in raw.values()) if r is not None]
        return sorted(records, key=lambda r: (r.requested_at or r.decided_at or 0.0, r.step))

    async def request(
        self, step: str, now: float, wait_seconds: float | None, summary: str | None = None
    ) -> ApprovalRecord:
        _, after = await self._update(step, lambda old: requested(old, step, now, wait_seconds, summary))
        return after

    async def decide(
        self, step: str, state: str, now: float, *, by: str, comment: str | None = None
    ) -> tuple[ApprovalRecord, bool]:
        """Record a decision; returns the record and whether this call made the decision (False: one was made
        before, and stays)."""
        before, after = await self._update(step, lambda old: decided(old, step, state, now, by, comment))
        return after, before != after

    async def told(self, step: str) -> None:
        """The run published the decision: a restart does not publish it again."""
        await self._update(step, lambda old: replace(old, told=True) if old is not None else None)

    async def _update(self, step: str, change: Any) -> tuple[ApprovalRecord | None, ApprovalRecord]:
        async def load(pipe: Pipeline) -> ApprovalRecord | None:
            return _decode(await pipe.hget(self.key, step))

        def store(pipe: Pipeline, record: ApprovalRecord | None) -> None:
            assert record is not None
            pipe.hset(self.key, step, _encode(record))

        before, after = await watched_update(self.redis, self.key, load, change, store)
        assert after is not None
        return before, after
