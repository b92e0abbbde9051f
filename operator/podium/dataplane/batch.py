"""Concurrent callers' Redis commands in one pipeline: one round trip for many callers, each gets its own replies.

A caller hands :meth:`Batcher.run` a function that queues its commands on a pipeline; everything queued in the
same event-loop tick, or while the previous send is in flight, goes out together (:mod:`podium.dataplane.coalesce`),
in submit order and each caller's commands in its own order. So a run's parallel steps share their reads and
writes instead of taking a round trip each, and a sequential step loses nothing (a batch of one is a plain
pipeline). No MULTI: the batch is not atomic, exactly as the separate round trips it replaces were not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane.coalesce import Coalescer

# Queues one caller's commands on the shared pipeline (and nothing else: it must not await).
Queue = Callable[[Pipeline], object]
# Told of the caller's replies (or of the error that stopped the whole batch) as soon as the batch is back, before
# any caller resumes: what a queue took on behalf of other callers is handed to them here.
After = Callable[[list[Any] | BaseException], None]


@dataclass
class _Item:
    queue: Queue
    after: After | None = None
    replies: list[Any] = field(default_factory=list)


class Batcher:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._coalescer: Coalescer[_Item] = Coalescer(self._send, name="podium-command-batcher")

    async def run(self, queue: Queue, after: After | None = None) -> list[Any]:
        """The replies of the commands ``queue`` adds, sent with whatever else is pending. Raises the first error
        among them (the other callers of the batch are not affected). ``after``: see :data:`After`."""
        item = _Item(queue, after)
        await self._coalescer.submit(item)
        return item.replies

    async def _send(self, items: list[_Item]) -> list[BaseException | None]:
        try:
            outcomes = await self._execute(items)
        except BaseException as exc:
            for item in items:
                if item.after is not None:
                    item.after(exc)
            raise
        for i, item in enumerate(items):
            if item.after is not None:
                item.after(outcomes[i] or item.replies)
        return outcomes

    async def _execute(self, items: list[_Item]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(items)
        spans: list[tuple[int, int]] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for i, item in enumerate(items):
                start = len(pipe)
                try:
                    item.queue(pipe)
                except Exception as exc:  # bad input of one caller (an unencodable value): only it hears
                    stack = getattr(pipe, "command_stack", None)  # a Cluster's pipeline keeps it elsewhere
                    if stack is None:
                        raise  # then every caller of this batch hears it
                    del stack[start:]
                    outcomes[i] = exc
                spans.append((start, len(pipe)))
            replies = await pipe.execute(raise_on_error=False) if len(pipe) else []
        for i, (item, (start, end)) in enumerate(zip(items, spans, strict=True)):
            if outcomes[i] is not None:
                continue
            item.replies = list(replies[start:end])
            outcomes[i] = next((r for r in item.replies if isinstance(r, Exception)), None)
        return outcomes

    async def aclose(self) -> None:
        """Wait until everything already submitted has been sent."""
        await self._coalescer.aclose()
