"""One replica's side of an agent inbox: fetch work, complete it exactly once, heartbeat, recover, leave.

Delivery is at-least-once (a Redis Streams consumer group) and bounded; recording is exactly-once per task id +
attempt (the library's completion function records it in the task's sealed result key, which is the marker).
What bounds delivery:

- An entry's delivery count counts hand-outs to a backend (:mod:`podium.dataplane.scripts`). Every path that
  hands an entry out checks it: a fresh read, this replica's own pending entries after a restart under the same
  name, its own entries left idle for a lease, and work taken over from replicas whose lease lapsed. An entry
  already handed out ``max_deliveries`` times without a result is dead-lettered instead, with its reason and an
  error result, so its producer learns at once.
- A suspect, an entry handed out twice already without a result (each time its replica crashed, was killed or lost
  it), goes out alone, and nothing else goes out on this replica until it is settled. A task that kills its
  replica therefore burns only its own deliveries: the tasks that ran beside it are redelivered with it once more,
  then each alone, and finish. Entries handed out once before go out in batches like fresh ones, so a dead
  replica's work is taken over at full speed.
- Decoding is total: any bytes in an inbox entry become a task or a dead letter with the reason (too large,
  nested too deep, not JSON, wrong fields, addressed to another agent); nothing escapes :meth:`fetch`.

What keeps work from being lost:

- A replica re-takes its own entries that sat idle for a lease while it was not running them (a read whose reply
  was lost with its connection, say), so nothing stays pending on a live replica.
- Work of other replicas is taken over only once Redis has answered this replica for a whole lease: after an
  outage every live replica has had time to heartbeat again, so stale heartbeats alone never move work off a
  live replica. Heartbeats are allowed when Redis is out of memory, and taking over is not (a function refused
  whole), so memory pressure cannot make live replicas look dead either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from podium.dataplane.cancellation import cancelled_result, why_cancelled
from podium.dataplane.keys import GROUP, AgentKeys
from podium.dataplane.library import VERSION
from podium.dataplane.messages import MalformedMessage, Result, Task, check_depth
from podium.dataplane.records import Delivery, stream_id_key, text

if TYPE_CHECKING:
    from podium.dataplane.bus import Bus

log = logging.getLogger(__name__)

# Lease expiry plus at most one recovery interval (lease/4) is how long a dead replica's work waits: 4 s keeps
# that within 5 s, while a live replica has to miss three heartbeats (one per lease/3) before it loses work.
DEFAULT_LEASE_SECONDS = 4.0
RECOVER_BUDGET = 256  # entries one recovery pass may take
# Hand-outs without a result after which an entry runs alone. One lost hand-out is what every task in flight on a
# replica that died shares; a second one, on another replica or incarnation, points at the task itself.
ISOLATE_AFTER = 2
WAIT_TIMEOUT_MS = 2000  # how long a completion waits for replicas to hold it (Bus.wait_replicas)
REASON_LIMIT = 2000  # characters of a dead letter's reason


class NoGroup(RedisError):
    """The inbox has no consumer group and this replica's Redis user may not create one (the operator does)."""


class NotDurable(RedisError):
    """A result was recorded but not enough replicas confirmed holding it in time; completing again is safe."""


@dataclass
class _Held:
    """An inbox entry this replica owns but has not handed out."""

    entry_id: str
    fields: Any
    handed: int  # hand-outs so far (the group's delivery count)


@dataclass
class _Bad:
    """Why an entry cannot run, and the task it holds if that much is known (for the error result)."""

    reason: str
    ident: tuple[str, int] | None


class InboxConsumer:
    def __init__(
        self, bus: Bus, namespace: str, agent: str, replica: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0, got {lease_seconds}")
        if not replica or ":" in replica:
            raise ValueError(f"replica name must be non-empty and hold no ':', got {replica!r}")
        self.bus = bus
        self.keys = AgentKeys(namespace, agent)
        self.namespace = namespace
        self.agent = agent
        self.replica = replica
        self.lease_seconds = lease_seconds
        self._redis: aioredis.Redis = bus.redis
        self._group_ready = False
        self._own_checked = False
        self._max_bytes: int | None = None  # the library's limit on tasks and results
        self._held: list[_Held] = []
        self._out: dict[str, Delivery] = {}  # handed out and not yet settled, by entry id
        self._settled = asyncio.Event()
        # Since when every Redis call of this replica has succeeded; None right after a failure. A replica that never
        # saw one may take over others' work at once; one that did waits a lease, so that after an outage every
        # live replica has heartbeated again before anyone judges it dead.
        self._ok_since: float | None = 0.0
        # Read the cancelled set along with every new batch once this consumer has had orchestration work
        # (it saves such batches a second round trip); an agent fed only direct tasks never needs the set, so
        # it keeps its one-command read.
        self._reads_cancelled = False
        self._last_recover = 0.0
        self._last_heartbeat = 0.0
        self._load = 0.0
        self._problem: str | None = None  # the last heartbeat's: why this replica takes no work
        self._in_flight = 0
        # Recovery scans every consumer's state: do it a few times per lease, not on every fetch.
        self.recover_interval = max(0.05, lease_seconds / 4)

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    @property
    def _max_deliveries(self) -> int:
        return self.bus.max_deliveries

    @property
    def _isolate_after(self) -> int:
        # Below max_deliveries, so that the tasks run beside a poison task still have a delivery left to run alone.
        return max(1, min(ISOLATE_AFTER, self.bus.max_deliveries - 1))

    def _suspect(self, handed: int) -> bool:
        return self._isolate_after <= handed < self._max_deliveries

    def _answered(self) -> None:
        if self._ok_since is None:
            self._ok_since = time.monotonic()

    def _unanswered(self) -> None:
        self._ok_since = None

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From id 0 so that tasks dispatched before any consumer existed are delivered too.
            await self._redis.xgroup_create(self.keys.inbox, GROUP, id="0", mkstream=True)
        except NoPermissionError:
            pass  # an agent's user: the operator creates the group with the Agent, and dispatch does with the inbox
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _lost_group(self) -> None:
        # The inbox was purged or Redis lost it: recreate it if this user may, else say who does.
        self._group_ready = False
        try:
            await self._redis.xgroup_create(self.keys.inbox, GROUP, id="0", mkstream=True)
        except NoPermissionError:
            raise NoGroup(
                f"inbox {self.keys.inbox} has no consumer group: the operator creates it when it applies the Agent "
                f"(and the first dispatch does); is the operator running?"
            ) from None
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _limit(self) -> int:
        """The largest task or result the library stores (read once from Redis)."""
        if self._max_bytes is None:
            version, max_bytes = await self.bus.call("podium_info", [], [], read_only=True)
            if text(version) != VERSION:
                log.warning(
                    "the podium library in Redis is version %s, this replica's is %s: the operator loads its own "
                    "version; replicas of another version may fail until they are replaced",
                    text(version),
                    VERSION,
                )
            self._max_bytes = int(max_bytes)
        return self._max_bytes

    async def join(self) -> None:
        """Check the inbox's consumer group and the library, and announce this replica (fetch does it lazily too)."""
        try:
            await self._ensure_group()
            await self._limit()
            await self.heartbeat(self._load, self._in_flight, self._problem)
        except (RedisError, OSError):
            self._unanswered()
            raise
        self._answered()

    # -- fetching -------------------------------------------------------------------------------------

    async def fetch(self, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` tasks: recovered work first, then new entries (blocking up to ``block_ms``; 0 = no wait).

        A suspect (a task handed out twice already without a result) comes alone, and while it is out this returns
        nothing else (it waits up to ``block_ms`` for it to be settled). Malformed and too-often-delivered entries
        are dead-lettered and never returned; tasks of a cancelled orchestration are completed as failed
        ("cancelled: ...") and never returned either.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        try:
            out = await self._fetch(count, block_ms)
        except (RedisError, OSError):
            self._unanswered()
            raise
        self._answered()
        return out

    async def _fetch(self, count: int, block_ms: int) -> list[Delivery]:
        self._settled.clear()
        await self._ensure_group()
        await self._limit()
        now = time.monotonic()
        if now - self._last_heartbeat > self.lease_seconds / 3:
            await self.heartbeat(self._load, self._in_flight, self._problem)
        if self._isolating():
            await self._wait_settled(block_ms)
            return []
        if not self._own_checked:
            # A replica restarted under the same name gets back what it held when it died.
            await self._recover("own", 0, ())
            await self._spread_suspects()
            self._own_checked = True
        if now - self._last_recover >= self.recover_interval:
            await self.reclaim()
        out = await self._hand_out(count)
        cancelled: set[str] | None = None
        # From here on entries have been handed out: a failure returns them rather than leaving them to a recovery
        # pass (which would count a hand-out that never ran).
        try:
            if len(out) < count and not (out and self._suspect(out[0].deliveries - 1)):
                block = block_ms if block_ms > 0 and not out else None
                if self._reads_cancelled:
                    fresh, cancelled = await self._read_new(count - len(out), block)
                else:
                    fresh = await self._read(count - len(out), block)
                out.extend(fresh)
            out = await self._settle_cancelled(out, cancelled)
        except (RedisError, OSError):
            if not out:
                raise
            self._unanswered()
        for delivery in out:
            self._out[delivery.entry_id] = delivery
        return out

    def _isolating(self) -> bool:
        return any(self._suspect(d.deliveries - 1) for d in self._out.values())

    async def _wait_settled(self, block_ms: int) -> None:
        if block_ms > 0:
            try:
                await asyncio.wait_for(self._settled.wait(), block_ms / 1000)
            except TimeoutError:
                pass

    def _settle(self, delivery: Delivery) -> None:
        if self._out.pop(delivery.entry_id, None) is not None:
            self._settled.set()

    async def reclaim(self) -> int:
        """Take back work for the next fetches: this replica's own entries idle for a lease that it is not running,
        entries handed back by any replica, and (once Redis has answered this replica for a whole lease) the
        entries of replicas whose lease lapsed. Returns how many entries were taken."""
        await self._ensure_group()
        self._last_recover = time.monotonic()
        skip = [*self._out, *(h.entry_id for h in self._held)]
        taken = await self._recover("own", self._lease_ms, skip)
        answered = self._ok_since is not None and time.monotonic() - self._ok_since >= self.lease_seconds
        taken += await self._recover("dead" if answered else "released", self._lease_ms, ())
        return taken

    async def _recover(self, mode: str, min_idle_ms: int, skip: Sequence[str]) -> int:
        holds_suspect = any(self._suspect(h.handed) for h in self._held)
        reply = await self.bus.call(
            "podium_recover",
            [self.keys.inbox, self.keys.heartbeats],
            [
                self.replica,
                mode,
                min_idle_ms,
                RECOVER_BUDGET,
                0 if holds_suspect else 1,
                self._max_deliveries,
                self._isolate_after,
                *skip,
            ],
        )
        known = {h.entry_id for h in self._held}
        for entry_id, fields, handed in reply or []:
            if text(entry_id) not in known:
                self._held.append(_Held(text(entry_id), fields, int(handed)))
        self._held.sort(key=lambda h: stream_id_key(h.entry_id))
        return len(reply or [])

    async def _spread_suspects(self) -> None:
        """Keep one suspect and hand the others back, so that other replicas run them (each alone) while this one
        runs its own: a restarted replica does not recover its suspects one task at a time."""
        suspects = [h for h in self._held if self._suspect(h.handed)]
        if len(suspects) < 2:
            return
        extra = {h.entry_id for h in suspects[1:]}
        await self.bus.call("podium_release", [self.keys.inbox], [self.replica, "1", *sorted(extra)])
        self._held = [h for h in self._held if h.entry_id not in extra]

    async def _hand_out(self, count: int) -> list[Delivery]:
        """Recovered entries to hand out now: dead-letter those out of deliveries or undecodable, then those that are
        not suspects (up to ``count``), or else one suspect when nothing else is out."""
        maxd = self._max_deliveries
        limit = await self._limit()
        for held in [h for h in self._held if h.handed >= maxd]:
            self._held.remove(held)
            decoded = self._decode(held.fields, limit)
            ident = (decoded.id, decoded.attempt) if isinstance(decoded, Task) else decoded.ident
            reason = (
                f"handed out {held.handed} times (max {maxd}) without a result: each time its replica crashed, "
                f"was killed or lost its lease before finishing it"
            )
            await self.dead_letter(held.entry_id, reason, held.handed, ident)
        picks = [h for h in self._held if not self._suspect(h.handed)][:count]
        if not picks and not self._out:
            picks = self._held[:1]  # what is left is suspects: one, alone
        out: list[Delivery] = []
        chosen: list[tuple[_Held, Task]] = []
        for held in picks:
            self._held.remove(held)
            decoded = self._decode(held.fields, limit)
            if isinstance(decoded, _Bad):
                await self.dead_letter(held.entry_id, decoded.reason, held.handed + 1, decoded.ident)
            else:
                chosen.append((held, decoded))
        if chosen:
            args: list[Any] = [self.replica]
            for held, _task in chosen:
                args += [held.entry_id, held.handed + 1]
            claimed = {text(i) for i in await self.bus.call("podium_handout", [self.keys.inbox], args) or []}
            for held, task in chosen:
                if held.entry_id in claimed:  # else settled meanwhile by another replica
                    out.append(Delivery(task=task, entry_id=held.entry_id, deliveries=held.handed + 1))
        return out

    async def _settle_cancelled(self, deliveries: list[Delivery], cancelled: set[str] | None) -> list[Delivery]:
        """Complete tasks of cancelled orchestrations as failed and return the others.

        ``cancelled`` is the set as read with (after) this fetch's XREADGROUP, or None if there was no such read:
        then it is read now, and only if some task belongs to an orchestration. Either way it is no older than
        the entries it judges, so a cancel is seen by the very next fetch (recovered entries included).
        """
        if not any(d.task.orchestration for d in deliveries):
            return deliveries
        self._reads_cancelled = True
        if cancelled is None:
            cancelled = {text(m) for m in await self._redis.smembers(self.keys.cancelled)}
        if not cancelled:
            return deliveries
        kept, dropped = [], []
        for d in deliveries:
            why = why_cancelled(d.task, cancelled)
            if why is None:
                kept.append(d)
            else:
                dropped.append((d, cancelled_result(d.task, self.replica, why)))
        if dropped:
            await self.complete_many(dropped)
        return kept

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
        return await self._deliveries(reply), {text(m) for m in members}

    async def _read(self, count: int, block_ms: int | None) -> list[Delivery]:
        try:
            reply = await self._redis.xreadgroup(
                GROUP, self.replica, {self.keys.inbox: ">"}, count=count, block=block_ms
            )
            reraise_swallowed_cancel()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._lost_group()
            return []
        return await self._deliveries(reply)

    async def _deliveries(self, reply: Any) -> list[Delivery]:
        out: list[Delivery] = []
        limit = await self._limit()
        for _stream, entries in _stream_entries(reply):
            for raw_id, raw_fields in entries:
                entry_id = text(raw_id)
                decoded = self._decode(raw_fields, limit)
                if isinstance(decoded, _Bad):
                    await self.dead_letter(entry_id, decoded.reason, 1, decoded.ident)
                else:
                    out.append(Delivery(task=decoded, entry_id=entry_id, deliveries=1))
        return out

    def _decode(self, raw_fields: Any, limit: int) -> Task | _Bad:
        """The entry's task, or why it cannot run (never raises for what the entry holds). ``limit``: the largest
        task entry, in bytes."""
        fields = _raw_fields(raw_fields)
        ident = _identity(fields)
        raw = fields.get("t")
        if raw is None:
            return _Bad(f"inbox entry has no task field 't' (fields: {sorted(fields)[:20]})", ident)
        if len(raw) > limit:
            return _Bad(f"task entry is {len(raw)} bytes, over the bus limit of {limit} bytes", ident)
        try:
            task = Task.from_json(raw)
        except MalformedMessage as exc:
            return _Bad(str(exc), ident)
        except Exception as exc:  # totality: whatever else the decoder hits is this entry's fault, not the replica's
            return _Bad(f"task cannot be decoded: {type(exc).__name__}: {exc}", ident)
        if (task.namespace, task.agent) != (self.namespace, self.agent):
            # Its producer waits on the other agent's keys, which this replica may not write: no error result.
            return _Bad(
                f"task {task.id!r} is addressed to {task.namespace}/{task.agent}, not {self.namespace}/{self.agent}",
                None,
            )
        if ident is not None and ident != (task.id, task.attempt):
            return _Bad(f"entry says task {ident[0]!r} attempt {ident[1]} but holds task {task.id!r}", None)
        return task

    async def dead_letter(
        self, entry_id: str, reason: str, deliveries: int, ident: tuple[str, int] | None = None
    ) -> bool:
        """Move a pending entry to the dead-letter stream and acknowledge it, atomically; with ``ident`` (task id,
        attempt) also record an error result naming the reason, so the producer learns at once. False if the entry
        was not pending any more."""
        if len(reason) > REASON_LIMIT:
            reason = reason[:REASON_LIMIT] + "..."
        keys = [self.keys.inbox, self.keys.dlq, self.keys.results]
        args: list[Any] = [
            entry_id,
            reason,
            deliveries,
            self.bus.stream_maxlen,
            self.bus.result_ttl_seconds,
            self.bus.stream_maxlen,
        ]
        if ident is not None:
            task_id, attempt = ident
            error = Result(
                task_id=task_id,
                attempt=attempt,
                ok=False,
                error=f"dead-lettered: {reason}",
                agent=self.agent,
                replica=self.replica,
            )
            keys.append(self.keys.result(task_id))
            args += [task_id, attempt, error.to_json()]
        log.warning("dead-lettered inbox entry %s of %s/%s: %s", entry_id, self.namespace, self.agent, reason)
        return bool(await self.bus.call("podium_dead_letter", keys, args))

    # -- settling -------------------------------------------------------------------------------------

    def _payload(self, delivery: Delivery, result: Result, limit: int) -> tuple[Result, bytes]:
        """The result as stored and its JSON: itself, or an error result saying why it cannot be stored as it is."""
        task = delivery.task
        if result.task_id != task.id:
            raise ValueError(f"result is for task {result.task_id!r} but the delivery is task {task.id!r}")
        why = None
        try:
            raw = result.to_json()
            check_depth(raw, [result.output], f"the output of task {task.id!r}")
        except ValueError as exc:
            why = f"its output cannot be stored: {exc}"
        else:
            if len(raw) <= limit:
                return result, raw
            why = (
                f"its result is {len(raw)} bytes encoded, over the bus limit of {limit} bytes: return large outputs "
                f"by reference (shared state, object storage)"
            )
        stored = dataclasses.replace(result, ok=False, output=None, quality=None, error=f"result not stored: {why}")
        return stored, stored.to_json()

    async def complete(self, delivery: Delivery, result: Result) -> bool:
        """Record the result and acknowledge the entry in one function call; False if this task id + attempt was
        already recorded (or the entry was no longer pending: purged or dead-lettered meanwhile)."""
        return (await self.complete_many([(delivery, result)]))[0]

    def as_stored(self, delivery: Delivery, result: Result) -> Result:
        """The result as :meth:`complete` will store it: ``result`` itself, or the failure stored in its place when
        it cannot be stored as it is (over the bus limit, nested too deep), by the limit this replica read when it
        fetched the task; no I/O."""
        return result if self._max_bytes is None else self._payload(delivery, result, self._max_bytes)[0]

    async def complete_many(self, done: Sequence[tuple[Delivery, Result]]) -> list[bool]:
        """Like :meth:`complete` for many deliveries in one round trip. Raises (nothing settled locally, the entries
        stay this replica's) when Redis cannot take them: call again until it can."""
        if not done:
            return []
        try:
            limit = await self._limit()
            payloads = [self._payload(d, r, limit)[1] for d, r in done]
            codes = await self._record(done, payloads)
            retry = [i for i, code in enumerate(codes) if code == -2]
            if retry:  # the library's limit shrank since this replica read it: store why instead
                self._max_bytes = None
                limit = await self._limit()
                again = [done[i] for i in retry]
                recoded = await self._record(again, [self._payload(d, r, limit)[1] for d, r in again])
                for i, code in zip(retry, recoded, strict=True):
                    codes[i] = code
        except (RedisError, OSError):
            self._unanswered()
            raise
        self._answered()
        for delivery, _ in done:
            self._settle(delivery)
        return [code == 1 for code in codes]

    async def _record(self, done: Sequence[tuple[Delivery, Result]], payloads: Sequence[bytes]) -> list[int]:
        keys: list[str] = [self.keys.inbox, self.keys.results]
        args: list[Any] = [self.bus.result_ttl_seconds, self.bus.stream_maxlen]
        for (delivery, _), payload in zip(done, payloads, strict=True):
            task = delivery.task
            keys.append(self.keys.result(task.id))
            args += [delivery.entry_id, task.id, task.attempt, payload]
        if not self.bus.wait_replicas:
            return [int(c) for c in await self.bus.call("podium_complete", keys, args)]
        replies, acked = await self.bus.call_and_wait("podium_complete", keys, args, self.bus.wait_replicas)
        if int(acked) < self.bus.wait_replicas:
            raise NotDurable(
                f"result recorded but only {acked} of {self.bus.wait_replicas} replicas confirmed it within "
                f"{WAIT_TIMEOUT_MS} ms; completing again"
            )
        return [int(c) for c in replies]

    async def release(self, delivery: Delivery, *, started: bool = False) -> None:
        """Hand back work this replica will not finish; another replica (or this one) takes it on its next recovery
        pass. ``started``: the task ran (it was cut off), so its hand-out counts toward ``max_deliveries``."""
        try:
            await self.bus.call(
                "podium_release", [self.keys.inbox], [self.replica, "1" if started else "0", delivery.entry_id]
            )
        except (RedisError, OSError):
            self._unanswered()
            raise
        self._answered()
        self._settle(delivery)
        self._last_recover = 0.0  # if no other replica takes it first, this one does at its next fetch

    async def heartbeat(self, load: float, in_flight: int, problem: str | None = None) -> None:
        """Renew this replica's lease; ``problem``: why it takes no work meanwhile (its backend unavailable), which
        the operator shows on the Agent."""
        self._load, self._in_flight, self._problem = float(load), int(in_flight), problem
        self._last_heartbeat = time.monotonic()
        args: list[Any] = [self.replica, f"{self._load:.4f}", self._in_flight, self._lease_ms]
        try:
            await self.bus.call("podium_heartbeat", [self.keys.heartbeats], [*args, problem] if problem else args)
        except (RedisError, OSError):
            self._unanswered()
            raise
        self._answered()

    async def leave(self) -> None:
        """Clean exit: hand back recovered work not started yet and drop the heartbeat. What this replica still
        holds is taken over by the others once they see its lease gone; the operator deletes the consumer later."""
        held = [h.entry_id for h in self._held]
        if held:
            await self.bus.call("podium_release", [self.keys.inbox], [self.replica, "1", *held])
        self._held.clear()
        await self.bus.call("podium_leave", [self.keys.heartbeats], [self.replica])


def _raw_fields(raw: Any) -> dict[str, Any]:
    """An entry's fields (a dict from XREADGROUP, a flat list from a function) by name, values left as they came
    (bytes, unless the client decodes): the task is measured and decoded from its bytes."""
    if isinstance(raw, dict):
        return {text(k): v for k, v in raw.items()}
    items = list(raw or [])
    return {text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _identity(fields: dict[str, Any]) -> tuple[str, int] | None:
    """(task id, attempt) from the entry's own fields, which dispatch writes next to the task: known even when
    the task itself cannot be decoded."""
    task_id, attempt = fields.get("i"), fields.get("a")
    if task_id is None or attempt is None:
        return None
    tid, att = text(task_id), text(attempt)
    if not tid or len(tid) > 1000 or not att.isdigit() or not 1 <= int(att) < 1 << 31:
        return None
    return tid, int(att)


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
