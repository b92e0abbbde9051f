"""Coalesce concurrent requests into one batched send (one Redis round trip for many callers).

Requests submitted in the same event-loop tick, or while the previous send is still in flight, go out together
in the next send; each caller gets back its own outcome (result or exception). One send is in flight at a time,
so under load batches grow instead of connections multiplying (Nagle-like, but never waits on a timer).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

# The send returns one entry per item, in order: None for success, or the exception for that item's caller.
Send = Callable[[list[T]], Awaitable[Sequence[BaseException | None]]]


class Coalescer(Generic[T]):
    def __init__(self, send: Send[T], *, max_batch: int = 5000, name: str = "podium-dispatch-batcher") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._send = send
        self._name = name
        self._max_batch = max_batch
        self._queue: deque[tuple[T, asyncio.Future[None]]] = deque()
        self._runner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> None:
        """Send ``item`` with whatever else is pending; returns when it was sent, raises its own error.

        A caller cancelled before its batch left is not sent; one cancelled after may have been.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a Bus reused across asyncio.run() calls: state of a dead loop is void
            self._queue.clear()
            self._runner, self._loop = None, loop
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.append((item, fut))
        if self._runner is None or self._runner.done():
            # A task (not an inline send) so that every submit of this tick lands in the queue first.
            self._runner = loop.create_task(self._drain(), name=self._name)
        await fut

    async def _drain(self) -> None:
        while self._queue:
            batch: list[tuple[T, asyncio.Future[None]]] = []
            while self._queue and len(batch) < self._max_batch:
                item, fut = self._queue.popleft()
                if not fut.done():  # skip callers cancelled while queued
                    batch.append((item, fut))
            if not batch:
                continue
            try:
                outcomes = await self._send([item for item, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"batched send returned {len(outcomes)} outcomes for {len(batch)} items")
            except asyncio.CancelledError:
                for _, fut in [*batch, *self._queue]:
                    fut.cancel()
                self._queue.clear()
                raise
            except Exception as exc:  # the whole send failed (connection lost...): every caller in it hears
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if outcome is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(outcome)

    async def aclose(self) -> None:
        """Wait until everything already submitted has been sent."""
        runner = self._runner
        if runner is not None and not runner.done() and runner.get_loop() is asyncio.get_running_loop():
            # wait(), not await: the callers hear the send's outcome; closing must not raise it a second time.
            await asyncio.wait([runner])
