"""Agents' circuit breakers in Redis: ``AgentKeys.breaker``, one JSON object each, changed by compare-and-set.

The breaker's states and steps are the engine's (:class:`podium.engine.resilience.Breaker`); this module stores
any dataclass of them, so the format lives here and the state machine there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane import topology
from podium.dataplane.keys import agent_keys
from podium.dataplane.redisutil import watched_update

B = TypeVar("B")


def encode(breaker: Any) -> str:
    return json.dumps(asdict(breaker))


def decode(raw: Any, into: type[B]) -> B:
    """The stored breaker, or a fresh ``into()`` when there is none."""
    if raw is None:
        return into()
    data: dict[str, Any] = json.loads(raw)
    # Fields a newer or older writer added or dropped must not make the breaker unreadable.
    known = {f.name for f in fields(into)}  # type: ignore[arg-type]
    return into(**{k: v for k, v in data.items() if k in known})


class BreakerRecords(Generic[B]):
    """Breakers of one namespace's agents, every change a compare-and-set (WATCH/MULTI with retry)."""

    def __init__(self, redis: aioredis.Redis, namespace: str, into: type[B]) -> None:
        self._redis = redis
        self._namespace = namespace
        self._into = into

    def _key(self, agent: str) -> str:
        return agent_keys(self._namespace, agent).breaker

    def parse(self, raw: Any) -> B:
        return decode(raw, self._into)

    async def load(self, agent: str) -> B:
        return self.parse(await self._redis.get(self._key(agent)))

    def queue_load(self, pipe: Pipeline, agent: str) -> None:
        """:meth:`load` as a command on the caller's pipeline; :meth:`parse` its reply."""
        pipe.get(self._key(agent))

    def queue_load_many(self, pipe: Pipeline, agents: Sequence[str]) -> Callable[[Sequence[Any]], list[B]]:
        """:meth:`load` of many agents on the caller's pipeline: one MGET on one server, a GET each on a Cluster
        (their keys are in different slots). Returns what parses them from the replies, from their first on."""
        if not agents:
            return lambda replies: []
        if topology.is_cluster(self._redis):
            for agent in agents:
                self.queue_load(pipe, agent)
            return lambda replies: [self.parse(r) for r in replies[: len(agents)]]
        pipe.mget([self._key(a) for a in agents])
        return lambda replies: [self.parse(r) for r in replies[0]]

    async def save(self, agent: str, breaker: B) -> None:
        """Overwrite the breaker (tests and resets); concurrent code uses :meth:`update`."""
        await self._redis.set(self._key(agent), encode(breaker))

    async def update(self, agent: str, step: Callable[[B], B], *, seen: B | None = None) -> tuple[B, B]:
        """Apply ``step`` to the stored breaker atomically; returns (before, after) as committed.

        ``seen`` is a value the caller has just read: if ``step`` leaves it unchanged nothing is written, as if
        the update had run at that read (saves the watched round trips on the common closed-and-healthy path).
        """
        if seen is not None and step(seen) == seen:
            return seen, seen
        key = self._key(agent)

        async def load(pipe: Pipeline) -> B:
            return self.parse(await pipe.get(key))

        return await watched_update(self._redis, key, load, step, lambda pipe, after: pipe.set(key, encode(after)))
