"""Small Redis helpers shared by engine modules: decoding either client flavour, and optimistic updates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

T = TypeVar("T")

# Optimistic retries per update. Each lost race means another writer committed, so N concurrent writers
# need at most N attempts; this bound only stops a livelock from spinning for ever.
MAX_UPDATE_ATTEMPTS = 64


class UpdateContention(RuntimeError):
    """An update lost the race to other writers :data:`MAX_UPDATE_ATTEMPTS` times in a row."""


def text(value: bytes | str | None) -> str:
    """Redis replies are bytes unless the client decodes them; the data plane works with either."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


async def watched_update(
    redis: aioredis.Redis,
    key: str,
    load: Callable[[Pipeline], Awaitable[T]],
    step: Callable[[T], T],
    store: Callable[[Pipeline, T], object],
) -> tuple[T, T]:
    """Read ``key`` with ``load``, apply the pure ``step``, write with ``store``: atomically (WATCH/MULTI, retried).

    Returns (before, after) as committed; nothing is written when ``step`` changes nothing. Concurrent callers
    each see the others' committed values, so no update is lost, without a server-side copy of ``step``.
    """
    async with redis.pipeline(transaction=True) as pipe:
        for _ in range(MAX_UPDATE_ATTEMPTS):
            try:
                await pipe.watch(key)
                before = await load(pipe)
                after = step(before)
                if after == before:
                    return before, after  # leaving the block unwatches
                pipe.multi()
                store(pipe, after)
                await pipe.execute()
                return before, after
            except WatchError:
                continue  # someone else committed in between: step from their value
    raise UpdateContention(f"{key}: {MAX_UPDATE_ATTEMPTS} updates in a row lost the race to other writers")
