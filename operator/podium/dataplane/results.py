"""Producers learn results from each agent's result stream: one background XREAD per Bus fans them out (on a
Redis Cluster one per agent, as each agent's stream sits in its own slot). A stream nobody has dispatched to or
waited on for ``idle_seconds`` is no longer read, so a long-lived Bus (the operator's, shared by its runs) does not
read every agent it ever used for ever.

The agent writes only its own keys (result key + result stream); a producer that waits registers a
future, then (unless the reader was already watching before the task was dispatched) GETs the result
key once, so a result written before the wait began is never missed. Only results sealed by the library's
completion function count (:mod:`podium.dataplane.library`): anything else in those keys is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from podium.dataplane import topology
from podium.dataplane.keys import AgentKeys
from podium.dataplane.library import SEAL_LENGTH, Library
from podium.dataplane.messages import MalformedMessage, Result, Task
from podium.dataplane.records import text

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def _result_prefix(namespace: str, agent: str) -> str:
    return AgentKeys(namespace, agent).result("")


def result_key(task: Task) -> str:
    """``AgentKeys(task.namespace, task.agent).result(task.id)``, without re-validating the names every time
    (the per-task producer path runs this several times per task)."""
    return _result_prefix(task.namespace, task.agent) + task.id


def _decode(raw: bytes | str | None) -> Result | None:
    if raw is None:
        return None
    try:
        return Result.from_json(raw)
    except MalformedMessage as exc:
        log.warning("ignoring a malformed result: %s", exc)
        return None


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def open_result(library: Library | None, task_id: str, value: bytes | str, *, warn: bool = True) -> Result | None:
    """A result key's value (seal + JSON) as a Result, or None when it was not sealed by the completion function
    (``warn``: saying so in the log). Without ``library`` (a reader that may not see it: the viewer, an agent waiting
    for its own A2A tasks) the seal goes unchecked."""
    raw = _bytes(value)
    body = library.open_value(task_id, raw) if library is not None else raw[SEAL_LENGTH:]
    if body is None:
        if warn:
            log.warning("ignoring result key of task %r: its seal does not verify (not written by the bus)", task_id)
        return None
    return _decode(body)


def sealed_result(library: Library | None, fields: dict[Any, Any], *, warn: bool = True) -> Result | None:
    """A result stream entry (fields ``i``, ``r``, ``s``) as a Result; None when its seal does not verify (``warn``:
    saying so in the log). Without ``library`` (a reader that may not see the library, e.g. the read-only viewer)
    the seal goes unchecked."""
    task_id = fields.get(b"i")
    if task_id is None:  # a client that decodes replies
        task_id, body, sealed = fields.get("i"), fields.get("r"), fields.get("s")
    else:
        body, sealed = fields.get(b"r"), fields.get(b"s")
    if body is None or task_id is None:
        return None
    if library is not None and (sealed is None or not library.verify(task_id, _bytes(body), sealed)):
        if warn:
            why = "whose seal does not verify (not written by the bus)"
            log.warning("ignoring a result of task %r %s", text(task_id), why)
        return None
    return _decode(body)


class _Waiting:
    """One wait() call: a single future for all its tasks, not one each (callbacks per task cost more than
    the rest of the result path)."""

    __slots__ = ("done", "out", "pending")

    def __init__(self, done: asyncio.Future[None], out: dict[str, Result]) -> None:
        self.done = done
        self.out = out  # task id -> result, filled as results arrive
        self.pending: dict[str, str] = {}  # result key -> task id, still missing

    def deliver(self, rkey: str, result: Result) -> None:
        task_id = self.pending.pop(rkey, None)
        if task_id is None:
            return
        self.out[task_id] = result
        if not self.pending and not self.done.done():
            self.done.set_result(None)


class ResultFanout:
    # A wait that trusted the stream (no GET) looks at the result keys once after this long without its results.
    RECHECK_SECONDS = 2.0

    def __init__(
        self, redis: aioredis.Redis, *, buffer: int = 200_000, block_ms: int = 1000, idle_seconds: float = 300.0
    ) -> None:
        self._redis = redis
        # Set by the Bus before anyone waits: results must carry its seal. None: a reader that may not see the
        # library (its own results, unchecked).
        self.library: Library | None = None
        # Set by the Bus: reads the library again after a seal did not verify. A Redis that restarted empty gets
        # the library loaded anew, with a new secret: without this, every result sealed from then on would be
        # ignored as forged, and every run waiting on one would time out.
        self.reread: Callable[[], Awaitable[object]] | None = None
        self._buffer = buffer
        self._block_ms = block_ms
        self._streams: dict[str, str] = {}  # result stream key -> last id read
        self._used: dict[str, float] = {}  # result stream key -> when a dispatch or a wait last wanted it
        self._idle_seconds = idle_seconds
        self._swept = time.monotonic()
        self._waiters: dict[str, list[_Waiting]] = {}  # result key -> the wait() calls that want it
        self._starting: dict[str, asyncio.Task[None]] = {}  # result stream key -> its first lookup
        # Result keys of tasks dispatched while their stream was watched: their result will come through
        # the stream, so a wait needs no GET. Results that arrive before anyone waits are kept in _arrived.
        self._expected: OrderedDict[str, None] = OrderedDict()
        self._arrived: OrderedDict[str, Result] = OrderedDict()
        self._changed = asyncio.Event()
        # Reader tasks: one for every stream (key None), or on a Cluster one per stream, since one XREAD may only
        # name keys of one slot and each agent has a slot of its own.
        self._per_stream = topology.is_cluster(redis)
        self._tasks: dict[str | None, asyncio.Task[None]] = {}
        self._closed = False

    async def watch(self, keys: AgentKeys) -> bool:
        """Start reading this agent's result stream (from its current end). True if it was already watched."""
        self._used[keys.results] = time.monotonic()
        if keys.results in self._streams:
            return True
        # Concurrent first dispatches to one agent share one lookup: one connection, not one per caller, and
        # they resume in call order (so their tasks are queued in that order).
        starting = self._starting.get(keys.results)
        if starting is None:
            starting = asyncio.get_running_loop().create_task(self._start(keys.results))
            self._starting[keys.results] = starting
        await asyncio.shield(starting)
        return False

    async def _start(self, stream: str) -> None:
        try:
            last = await self._redis.xrevrange(stream, count=1)
        finally:
            self._starting.pop(stream, None)
        if stream not in self._streams:
            self._streams[stream] = text(last[0][0]) if last else "0-0"
            self._changed.set()
            key = stream if self._per_stream else None
            task = self._tasks.get(key)
            if task is None or task.done():
                self._tasks[key] = asyncio.get_running_loop().create_task(self._run(key), name="podium-result-fanout")

    def expect(self, result_key: str) -> None:
        self._expected[result_key] = None
        while len(self._expected) > self._buffer:
            self._expected.popitem(last=False)

    async def wait(self, tasks: Sequence[Task], timeout: float) -> dict[str, Result]:  # noqa: ASYNC109
        out: dict[str, Result] = {}
        waiting = _Waiting(asyncio.get_running_loop().create_future(), out)
        to_get: list[str] = []  # result keys to GET once (their stream was not watched at dispatch)
        trusted: list[str] = []  # result keys left to the stream (dispatched while it was watched)
        rkeys = [result_key(task) for task in tasks]
        try:
            for task, rkey in zip(tasks, rkeys, strict=True):
                arrived = self._arrived.pop(rkey, None)
                if arrived is not None:
                    out[task.id] = arrived
                    continue
                waiting.pending[rkey] = task.id
                self._waiters.setdefault(rkey, []).append(waiting)
                if rkey in self._expected:
                    trusted.append(rkey)
                else:
                    await self.watch(AgentKeys(task.namespace, task.agent))
                    to_get.append(rkey)
            await self._get(to_get)
            if waiting.pending and timeout > 0:
                first = min(timeout, self.RECHECK_SECONDS) if trusted else timeout
                await asyncio.wait([waiting.done], timeout=first)
                if waiting.pending and timeout > first:
                    # An attempt sent again after its result was recorded (two replicas drove the run for a moment
                    # around a lease handover) is deduplicated by the completion function: no new stream entry.
                    await self._get([rkey for rkey in trusted if rkey in waiting.pending])
                    if waiting.pending:
                        await asyncio.wait([waiting.done], timeout=timeout - first)
        finally:
            for rkey in rkeys:
                groups = self._waiters.get(rkey)
                if groups is not None:
                    groups[:] = [g for g in groups if g is not waiting]
                    if not groups:
                        del self._waiters[rkey]
                self._expected.pop(rkey, None)
        return dict(out)

    async def _get(self, rkeys: list[str]) -> None:
        """GET result keys (1,000 a pipeline) and deliver the results found."""
        for start in range(0, len(rkeys), 1000):
            chunk = rkeys[start : start + 1000]
            async with self._redis.pipeline(transaction=False) as pipe:
                for rkey in chunk:
                    pipe.get(rkey)
                raws = await pipe.execute()
            rejected = []
            for rkey, raw in zip(chunk, raws, strict=True):
                if raw is not None:
                    result = self._open(rkey, raw, warn=False)
                    if result is None:
                        rejected.append((rkey, raw))
                    self._deliver(rkey, result)
            await self._rejected(rejected, self._open)

    def _open(self, rkey: str, raw: bytes, *, warn: bool = True) -> Result | None:
        return open_result(self.library, AgentKeys.parse_result(rkey)[1], raw, warn=warn)

    def _sealed(self, rkey: str, fields: dict[Any, Any], *, warn: bool = True) -> Result | None:
        return sealed_result(self.library, fields, warn=warn)

    async def _rejected(self, items: list[tuple[str, Any]], open_: Callable[..., Result | None]) -> None:
        """Results whose seal did not verify: read the library again (the Bus does so at most once a second), then
        open them once more, warning of those that still do not verify."""
        if not items:
            return
        if self.reread is not None:
            try:
                await self.reread()
            except RedisError as exc:
                log.warning("cannot read the function library again: %s", exc)
        for rkey, raw in items:
            self._deliver(rkey, open_(rkey, raw))

    def _deliver(self, rkey: str, result: Result | None) -> None:
        if result is None:
            return
        groups = self._waiters.get(rkey)
        if groups:
            for waiting in groups:
                waiting.deliver(rkey, result)
            return
        if rkey in self._expected:
            del self._expected[rkey]
            self._arrived[rkey] = result
            while len(self._arrived) > self._buffer:
                self._arrived.popitem(last=False)

    async def _run(self, only: str | None) -> None:
        """Read every watched stream (``only`` None) or just ``only``, and fan the results out."""
        backoff = 0.05
        while not self._closed:
            self._forget_idle()
            streams = self._streams if only is None else {only: self._streams[only]} if only in self._streams else {}
            if not streams:
                return
            self._changed.clear()
            read = asyncio.ensure_future(
                self._redis.xread(dict(streams), count=2000, block=self._block_ms)  # type: ignore[arg-type]
            )
            if only is None:
                changed = asyncio.ensure_future(self._changed.wait())
                try:
                    await asyncio.wait({read, changed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                    if not read.done():
                        # A new stream joined (or we are closing): drop this read so the next includes it.
                        read.cancel()
                        with contextlib.suppress(asyncio.CancelledError, RedisError):
                            await read
                if read.cancelled():
                    continue
            else:
                with contextlib.suppress(RedisError):
                    await read  # its error, if any, is handled below
            try:
                reply = read.result()
                backoff = 0.05
            except RedisError as exc:
                log.warning("result reader: %s; retrying in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            await self._rejected(self._consume(reply), self._sealed)

    def _forget_idle(self) -> None:
        """Stop reading streams nobody wanted for ``idle_seconds`` and nobody waits on: a later dispatch or wait
        watches again (and a wait then GETs its result key, so nothing recorded meanwhile is missed)."""
        now = time.monotonic()
        if now - self._swept < self._idle_seconds / 4:
            return
        self._swept = now
        waited = {AgentKeys.parse_result(rkey)[0] for rkey in self._waiters}
        idle = {s for s in self._streams if s not in waited and now - self._used.get(s, now) >= self._idle_seconds}
        if not idle:
            return
        for stream in idle:
            del self._streams[stream]
            self._used.pop(stream, None)
        for kept in (self._expected, self._arrived):
            for rkey in [k for k in kept if AgentKeys.parse_result(k)[0] in idle]:
                del kept[rkey]

    def _consume(self, reply: Any) -> list[tuple[str, Any]]:
        """Deliver what the streams' entries hold; returns the wanted ones whose seal did not verify."""
        rejected: list[tuple[str, Any]] = []
        items = reply.items() if isinstance(reply, dict) else reply or []
        for stream, entries in items:
            skey = text(stream)
            prefix = skey[: -len("results")]
            last = None
            for entry_id, fields in entries:
                last = entry_id
                if not fields:
                    continue
                task_id = text(fields.get(b"i", fields.get("i")))
                rkey = f"{prefix}result:{task_id}"
                if rkey in self._waiters or rkey in self._expected:
                    result = sealed_result(self.library, fields, warn=False)
                    if result is None:
                        rejected.append((rkey, fields))
                    self._deliver(rkey, result)
            if last is not None and skey in self._streams:
                self._streams[skey] = text(last)
        return rejected

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await task
        self._tasks.clear()
