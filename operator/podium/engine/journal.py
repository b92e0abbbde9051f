"""The run's journal: one entry per step, written at dispatch and at result.

This is what makes runs durable without resume code: a strategy re-run after a restart asks the journal first,
gets finished steps' results at once and re-attaches to steps that were in flight. The entries of finished steps
are kept in memory too (they are final, :mod:`podium.engine.kept`), so a run can write them back when Redis lost
them.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.records import Entry, decode_entry, encode_entry

__all__ = ["DISPATCHED", "DONE", "Entry", "Journal"]

DISPATCHED = "dispatched"
DONE = "done"


class Journal:
    def __init__(
        self, redis: aioredis.Redis, namespace: str, name: str, uid: str, done: dict[str, Entry] | None = None
    ) -> None:
        self._redis = redis
        # The uid is part of the key so a re-created Orchestration with the same name starts from scratch.
        self._key = OrchestrationKeys(namespace, name).journal(uid)
        # Finished steps' entries, written or replayed (:meth:`queue_restore`); the caller's, to keep across runs.
        self._done: dict[str, Entry] = {} if done is None else done

    def keep(self, entries: Sequence[Entry]) -> None:
        """Remember the finished ones among these entries (written, or read back to replay a step)."""
        for e in entries:
            if e.state == DONE:
                self._done[e.step] = e

    @property
    def key(self) -> str:
        return self._key

    async def get(self, step: str) -> Entry | None:
        return self.parse(await self._redis.hget(self._key, step))

    def queue_get(self, pipe: Pipeline, step: str) -> None:
        """:meth:`get` as a command on the caller's pipeline; :meth:`parse` its reply."""
        pipe.hget(self._key, step)

    @staticmethod
    def parse(raw: bytes | str | None) -> Entry | None:
        return None if raw is None else decode_entry(raw)

    def queue_get_many(self, pipe: Pipeline, steps: Sequence[str]) -> None:
        """The entries of many steps as one command on the caller's pipeline; :meth:`parse_many` its reply."""
        pipe.hmget(self._key, list(steps))

    @classmethod
    def parse_many(cls, raw: Sequence[bytes | str | None]) -> list[Entry | None]:
        return [cls.parse(r) for r in raw]

    async def put(self, entry: Entry) -> None:
        self.keep([entry])
        await self._redis.hset(self._key, entry.step, encode_entry(entry))

    def queue_put(self, pipe: Pipeline, entry: Entry) -> None:
        """:meth:`put` as a command on the caller's pipeline (sent with its other writes, in order)."""
        self.queue_put_many(pipe, [entry])

    def queue_put_many(self, pipe: Pipeline, entries: Sequence[Entry]) -> None:
        """:meth:`put` of many entries as one command on the caller's pipeline."""
        self.keep(entries)
        pipe.hset(self._key, mapping={e.step: encode_entry(e) for e in entries})

    async def gone(self, step: str) -> tuple[bool, bool]:
        """(whether ``step``'s entry is gone, whether a finished step's entry this journal wrote or replayed is
        gone), in one command: what a Redis that restarted without its data lost of the journal."""
        kept = next((s for s in self._done if s != step), None)
        own, done = await self._redis.hmget(self._key, [step, kept or step])
        return own is None, kept is not None and done is None

    def queue_restore(self, pipe: Pipeline) -> list[str]:
        """Write back the finished steps' entries Redis no longer holds, as commands on the caller's pipeline, one
        HSETNX per step (their replies: 1 where written back); returns the steps, in that order."""
        for step, entry in self._done.items():
            pipe.hsetnx(self._key, step, encode_entry(entry))
        return list(self._done)

    async def entries(self) -> list[Entry]:
        raw = await self._redis.hgetall(self._key)
        return sorted((decode_entry(v) for v in raw.values()), key=lambda e: e.started_at)

    async def expire(self, seconds: int) -> None:
        await self._redis.expire(self._key, seconds)
