"""One replica's side of an agent inbox: fetch work, complete it exactly once, heartbeat, reclaim, leave.

Delivery is at-least-once (Redis Streams consumer group); effects are made idempotent by the COMPLETE
script, which records a result only for the first completion of a task id + attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from podium.dataplane.cancellation import cancelled_result, is_cancelled
from podium.dataplane.keys import GROUP, AgentKeys
from podium.dataplane.messages import MalformedMessage, Result, Task
from podium.dataplane.records import Delivery, fields_of, text

if TYPE_CHECKING:
    from podium.dataplane.bus import Bus


# Lease expiry plus at most one reclaim interval (lease/4) is how long a dead replica's work waits: 4 s keeps
# that within 5 s, while a live replica has to miss three heartbeats (one per lease/3) before it loses work.
DEFAULT_LEASE_SECONDS = 4.0


class InboxConsumer:
    def __init__(
        self, bus: Bus, namespace: str, agent: str, replica: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0, got {lease_seconds}")
        if not replica:
            raise ValueError("replica name must not be empty")
        self.bus = bus
        self.keys = AgentKeys(namespace, agent)
        self.namespace = namespace
        self.agent = agent
        self.replica = replica
        self.lease_seconds = lease_seconds
        self._redis: aioredis.Redis = bus.redis
        self._group_ready = False
        self._own_pending_checked = False
        self._reclaimed: list[Delivery] = []
        # Read the cancelled set along with every new batch once this consumer has had orchestration work
        # (it saves such batches a second round trip); an agent fed only direct tasks never needs the set, so
        # it keeps its one-command read.
        self._reads_cancelled = False
        self._last_reclaim = 0.0
        self._last_heartbeat = 0.0
        self._load = 0.0
        self._in_flight = 0
        # Reclaim scans every consumer's state: do it a few times per lease, not on every fetch.
        self.reclaim_interval = max(0.05, lease_seconds / 4)

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From id 0 so that tasks dispatched before any consumer existed are delivered too.
            await self._redis.xgroup_create(self.keys.inbox, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def join(self) -> None:
        """Create the inbox's consumer group if needed and announce this replica (fetch does it lazily too)."""
        await self._ensure_group()
        await self.heartbeat(self._load, self._in_flight)

    async def fetch(self, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` tasks: reclaimed work first, then new entries (blocking up to ``block_ms``; 0 = no wait).

        Malformed entries are moved to the dead-letter stream with the reason and never returned; tasks of a
        cancelled orchestration are completed as failed ("cancelled: ...") and never returned either.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        await self._ensure_group()
        now = time.monotonic()
        if now - self._last_heartbeat > self.lease_seconds / 3:
            await self.heartbeat(self._load, self._in_flight)
        out: list[Delivery] = []
        if not self._own_pending_checked:
            # A replica restarted under the same name gets back what it held before it died.
            out.extend(await self._read("0", count, None))
            self._own_pending_checked = True
        if now - self._last_reclaim >= self.reclaim_interval:
            await self.reclaim()
        take = min(count - len(out), len(self._reclaimed))
        out.extend(self._reclaimed[:take])
        del self._reclaimed[:take]
        cancelled: set[str] | None = None
        if len(out) < count:
            block = block_ms if block_ms > 0 and not out else None
            if self._reads_cancelled:
                fresh, cancelled = await self._read_new(count - len(out), block)
            else:
                fresh = await self._read(">", count - len(out), block)
            out.extend(fresh)
        return await self._settle_cancelled(out, cancelled)

    async def _settle_cancelled(self, deliveries: list[Delivery], cancelled: set[str] | None) -> list[Delivery]:
        """Complete tasks of cancelled orchestrations as failed and return the others.

        ``cancelled`` is the set as read with (after) this fetch's XREADGROUP, or None if there was no such read:
        then it is read now, and only if some task belongs to an orchestration. Either way it is no older than
        the entries it judges, so a cancel is seen by the very next fetch (reclaimed and restart-recovered
        entries included).
        """
        if not any(d.task.orchestration for d in deliveries):
            return deliveries
        self._reads_cancelled = True
        if cancelled is None:
            cancelled = {text(m) for m in await self._redis.smembers(self.keys.cancelled)}
        if not cancelled:
            return deliveries
        dropped = [d for d in deliveries if is_cancelled(d.task, cancelled)]
        if dropped:
            await self.complete_many([(d, cancelled_result(d.task, self.replica)) for d in dropped])
        return [d for d in deliveries if not is_cancelled(d.task, cancelled)]

    async def _read_new(self, count: int, block_ms: int | None) -> tuple[list[Delivery], set[str]]:
        """New entries, and the cancelled set as it is once the (possibly blocking) read returns.

        Both go in one pipeline: Redis runs the SMEMBERS only after the XREADGROUP has returned, so the set is
        as fresh as a separate read after it, and the batch costs one round trip instead of two.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xreadgroup(GROUP, self.replica, {self.keys.inbox: ">"}, count=count, block=block_ms)
            pipe.smembers(self.keys.cancelled)
            try:
                reply, members = await pipe.execute()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._lost_group()
                return [], set()
        reraise_swallowed_cancel()
        return await self._deliveries(">", reply), {text(m) for m in members}

    async def _lost_group(self) -> None:
        # The inbox was purged or Redis lost it: recreate and read again next time.
        self._group_ready = False
        await self._ensure_group()

    async def _read(self, from_id: str, count: int, block_ms: int | None) -> list[Delivery]:
        try:
            reply = await self._redis.xreadgroup(
                GROUP, self.replica, {self.keys.inbox: from_id}, count=count, block=block_ms
            )
            reraise_swallowed_cancel()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._lost_group()
            return []
        return await self._deliveries(from_id, reply)

    async def _deliveries(self, from_id: str, reply: Any) -> list[Delivery]:
        out: list[Delivery] = []
        for _stream, entries in _stream_entries(reply):
            deliveries = 1 if from_id == ">" else 2
            out.extend(await self._decode([(text(i), f) for i, f in entries], deliveries))
        return out

    async def _decode(self, entries: Sequence[tuple[str, Any]], deliveries: int) -> list[Delivery]:
        out: list[Delivery] = []
        for entry_id, raw_fields in entries:
            if raw_fields is None:  # an entry deleted while pending: nothing left to run
                await self._redis.xack(self.keys.inbox, GROUP, entry_id)
                continue
            fields = fields_of(raw_fields)
            raw = fields.get("t", "")
            try:
                if "t" not in fields:
                    raise MalformedMessage(f"inbox entry has no task field 't' (fields: {sorted(fields)})")
                task = Task.from_json(raw)
                if (task.namespace, task.agent) != (self.namespace, self.agent):
                    raise MalformedMessage(
                        f"task {task.id!r} is addressed to {task.namespace}/{task.agent}, "
                        f"not {self.namespace}/{self.agent}"
                    )
            except MalformedMessage as exc:
                await self.dead_letter(entry_id, str(exc), raw or repr(fields), deliveries)
                continue
            out.append(Delivery(task=task, entry_id=entry_id, deliveries=deliveries))
        return out

    async def dead_letter(self, entry_id: str, reason: str, raw: str, deliveries: int) -> None:
        """Move an entry to the dead-letter stream and acknowledge it, atomically."""
        await self.bus.scripts.dead_letter(
            keys=[self.keys.inbox, self.keys.dlq],
            args=[GROUP, entry_id, reason, raw, deliveries, self.bus.stream_maxlen],
        )

    def _complete_args(self, delivery: Delivery, result: Result) -> tuple[list[str], list[Any]]:
        task = delivery.task
        if result.task_id != task.id:
            raise ValueError(f"result is for task {result.task_id!r} but the delivery is task {task.id!r}")
        keys = [self.keys.inbox, self.keys.result(task.id), self.keys.done(task.id, task.attempt), self.keys.results]
        args: list[Any] = [
            GROUP,
            delivery.entry_id,
            result.to_json(),
            self.bus.result_ttl_seconds,
            self.bus.stream_maxlen,
            task.id,
        ]
        return keys, args

    async def complete(self, delivery: Delivery, result: Result) -> bool:
        """Record the result and acknowledge the entry in one script; False if this attempt was already recorded."""
        keys, args = self._complete_args(delivery, result)
        return bool(await self.bus.scripts.complete(keys=keys, args=args))

    async def complete_many(self, done: Sequence[tuple[Delivery, Result]]) -> list[bool]:
        """Like :meth:`complete` for many deliveries in one round trip (one script call each, pipelined)."""
        if not done:
            return []
        keys: list[str] = [self.keys.inbox, self.keys.results]
        args: list[Any] = [GROUP, self.bus.result_ttl_seconds, self.bus.stream_maxlen]
        for delivery, result in done:
            task = delivery.task
            if result.task_id != task.id:
                raise ValueError(f"result is for task {result.task_id!r} but the delivery is task {task.id!r}")
            keys += [self.keys.result(task.id), self.keys.done(task.id, task.attempt)]
            args += [delivery.entry_id, task.id, result.to_json()]
        replies = await self.bus.scripts.complete_many(keys=keys, args=args)
        return [bool(r) for r in replies]

    async def release(self, delivery: Delivery) -> None:
        """Hand back work this replica will not start, so that another replica gets it at once."""
        await self.bus.scripts.release(keys=[self.keys.inbox], args=[GROUP, delivery.entry_id, self.replica])

    async def heartbeat(self, load: float, in_flight: int) -> None:
        self._load, self._in_flight = float(load), int(in_flight)
        self._last_heartbeat = time.monotonic()
        await self.bus.scripts.heartbeat(
            keys=[self.keys.heartbeats], args=[self.replica, f"{self._load:.4f}", self._in_flight, self._lease_ms]
        )

    async def reclaim(self) -> int:
        """Take over the pending work of replicas whose lease lapsed; too-often-delivered entries go to the DLQ.

        Returns how many entries were claimed; they are handed out by the next :meth:`fetch`.
        """
        await self._ensure_group()
        self._last_reclaim = time.monotonic()
        reply = await self.bus.scripts.reclaim(
            keys=[self.keys.inbox, self.keys.heartbeats, self.keys.dlq],
            args=[GROUP, self.replica, self.bus.max_deliveries, 256, self.bus.stream_maxlen, self._lease_ms],
        )
        claimed = reply[0] if reply else []
        by_count: dict[int, list[tuple[str, Any]]] = {}
        for entry_id, raw_fields, n in claimed:
            by_count.setdefault(int(n), []).append((text(entry_id), raw_fields))
        for n, entries in by_count.items():
            self._reclaimed.extend(await self._decode(entries, n))
        return len(claimed)

    async def leave(self) -> None:
        """Clean exit: drop the heartbeat; the consumer is deleted if it holds nothing (else others reclaim it)."""
        self._reclaimed.clear()
        await self.bus.scripts.leave(keys=[self.keys.inbox, self.keys.heartbeats], args=[GROUP, self.replica])


def reraise_swallowed_cancel() -> None:
    # redis-py can return normally from a blocking read that was cancelled (the cancel is eaten inside
    # its timeout handling); without this a cancelled fetch loop would keep running.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


def _stream_entries(reply: Any) -> list[tuple[Any, list[tuple[Any, Any]]]]:
    # redis-py returns a list of [stream, entries] (RESP2) or a dict (RESP3).
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(reply.items())
    return [(s, e) for s, e in reply]
