"""A replica's membership and run leases, renewed from a thread of their own.

One event loop drives all of a replica's runs. Under a CPU limit, or while a hundred runs start at once, that
loop can fall seconds behind; had the renewal waited its turn there, a replica slow but working would lose its
runs to another one mid-step (which resumes them from the journal: an attempt in flight may then run twice, its
result recorded once). So a thread with an event loop and a Redis connection of its own heartbeats the replica
and renews the leases of the runs it drives every lease/3, whatever the main loop is doing.

It renews only while the main loop shows signs of life: a loop that has not run its tick for ``stall_seconds``
is stuck (a deadlock, a call that never returns), and its runs must move, so the thread then lets the leases
lapse. A killed process takes the thread with it: failover is as before, the lease and one round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

import redis.asyncio as aioredis

from podium.dataplane.shards import RunRef, Shards

log = logging.getLogger("podium.operator.orchestrations.leases")

TICK_SECONDS = 0.5  # how often the main loop says it is alive
STALL_LEASES = 5  # a main loop silent for this many leases is stuck: its runs' leases are let go


class LeaseKeeper:
    """Heartbeats and renews ``keep``'s leases every lease/3 from its own thread; tells ``lost`` (on the main
    loop) of runs whose lease another replica holds or that lapsed."""

    def __init__(
        self,
        connect: Callable[[], aioredis.Redis],
        group: str,
        replica: str,
        lease_seconds: float,
        lost: Callable[[list[RunRef]], None],
        *,
        stall_seconds: float | None = None,
    ) -> None:
        self.connect, self.group, self.replica, self.lease = connect, group, replica, lease_seconds
        self.stall = stall_seconds if stall_seconds is not None else STALL_LEASES * lease_seconds
        self.lost = lost
        self._refs: tuple[RunRef, ...] = ()
        self._alive = time.monotonic()
        self._main: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._own: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = threading.Event()

    def keep(self, refs: Iterable[RunRef]) -> None:
        """The runs whose leases to renew from now on (the runs this replica drives)."""
        self._refs = tuple(refs)  # one reference swapped: the thread reads whole tuples only

    def start(self) -> None:
        self._main = asyncio.get_running_loop()
        self._alive = time.monotonic()
        self._ticker = asyncio.create_task(self._tick(), name="podium lease keeper tick")
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), name="podium leases", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._own is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop ended already
                self._own.call_soon_threadsafe(self._stop.set)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    async def _tick(self) -> None:
        while True:
            self._alive = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)

    async def _run(self) -> None:
        self._own, self._stop = asyncio.get_running_loop(), asyncio.Event()
        client = self.connect()
        shards = Shards(client, self.group, self.replica, self.lease)
        interval, stalled = self.lease / 3, False
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                silent = started - self._alive
                if silent <= self.stall:
                    stalled = False
                    await self._renew(shards)
                elif not stalled:
                    stalled = True
                    log.error(
                        "the operator's event loop has not run for %.0fs: letting the leases of %d run(s) lapse so "
                        "other replicas take them over",
                        silent,
                        len(self._refs),
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), max(0.0, started + interval - time.monotonic()))
        finally:
            await client.aclose()

    async def _renew(self, shards: Shards) -> None:
        refs = self._refs
        try:
            await shards.beat()
            held = await shards.renew(refs)
        except Exception as e:  # Redis away: the main loop's rounds say so too; the leases lapse meanwhile
            log.warning("renewing run leases: %s", e)
            return
        gone = [ref for ref, ok in held.items() if not ok]
        if gone and self._main is not None:
            with contextlib.suppress(RuntimeError):  # the main loop closed: shutting down
                self._main.call_soon_threadsafe(self.lost, gone)
