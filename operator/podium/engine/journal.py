"""The run's journal: one entry per step, written at dispatch and at result.

This is what makes runs durable without resume code: a strategy re-run after a restart asks the journal first,
gets finished steps' results at once and re-attaches to steps that were in flight.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane.redisutil import text

DISPATCHED = "dispatched"
DONE = "done"


@dataclass
class Entry:
    step: str
    state: str  # dispatched | done
    task_id: str
    agent: str
    attempt: int
    kind: str = ""
    ok: bool | None = None
    result: dict[str, Any] | None = None  # the Result's JSON form, once done
    started_at: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    history: list[str] = field(default_factory=list)  # agents tried, in order


def journal_key(namespace: str, name: str) -> str:
    return f"podium:{{{namespace}/{name}}}:journal"


class Journal:
    def __init__(self, redis: aioredis.Redis, namespace: str, name: str, uid: str) -> None:
        self._redis = redis
        # The uid is part of the key so a re-created Orchestration with the same name starts from scratch.
        self._key = f"{journal_key(namespace, name)}:{uid}"

    @property
    def key(self) -> str:
        return self._key

    async def get(self, step: str) -> Entry | None:
        raw = await self._redis.hget(self._key, step)
        if raw is None:
            return None
        return Entry(**json.loads(text(raw)))

    async def put(self, entry: Entry) -> None:
        await self._redis.hset(self._key, entry.step, json.dumps(asdict(entry)))

    def queue_put(self, pipe: Pipeline, entry: Entry) -> None:
        """:meth:`put` as a command on the caller's pipeline (sent with its other writes, in order)."""
        pipe.hset(self._key, entry.step, json.dumps(asdict(entry)))

    async def entries(self) -> list[Entry]:
        raw = await self._redis.hgetall(self._key)
        return sorted((Entry(**json.loads(text(v))) for v in raw.values()), key=lambda e: e.started_at)

    async def expire(self, seconds: int) -> None:
        await self._redis.expire(self._key, seconds)
