"""The message bus over Redis Streams: task inboxes with results, events, direct messages, history, DLQ.

Key schema in :mod:`podium.dataplane.keys`, scripts in :mod:`podium.dataplane.scripts`; the consumer side is
:class:`podium.dataplane.consumer.InboxConsumer`. See docs/data-plane.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from podium.dataplane import cancellation, topology
from podium.dataplane.batch import After, Queue
from podium.dataplane.coalesce import Coalescer
from podium.dataplane.consumer import DEFAULT_LEASE_SECONDS, WAIT_TIMEOUT_MS, InboxConsumer, reraise_swallowed_cancel
from podium.dataplane.keys import GROUP, AgentKeys, OrchestrationKeys, agent_keys, orchestration_keys
from podium.dataplane.library import Library, LibraryMissing, ensure_library
from podium.dataplane.messages import PayloadTooLarge, Result, Task, check_depth, encode_json
from podium.dataplane.records import (
    DeadLetter,
    Delivery,
    Event,
    ReplicaInfo,
    event_fields,
    fields_of,
    parse_dead_letter,
    parse_event,
    parse_replica,
    stream_id_key,
    text,
)
from podium.dataplane.results import ResultFanout, open_result, result_key, sealed_result

log = logging.getLogger(__name__)

REREAD_SECONDS = 1.0  # at most one re-read of the library a second, after seals that did not verify

__all__ = [
    "Bus",
    "DeadLetter",
    "Delivery",
    "Event",
    "InboxConsumer",
    "QueueFull",
    "ReplicaInfo",
]


@dataclass
class _DispatchRequest:
    """One dispatch call: its tasks grouped by agent inbox, and the caller's writes that must land first."""

    agents: list[tuple[AgentKeys, list[tuple[Task, bytes]]]]
    before: Queue | None = None
    after: After | None = None  # told the replies of ``before``'s commands, or the error that stopped the send


# One function call: name, keys, args.
FunctionCall = tuple[str, list[Any], list[Any]]


def function_missing(exc: ResponseError) -> bool:
    """The server lost the library (a restart without persistence, FUNCTION FLUSH) or never had it."""
    return "function not found" in str(exc).lower()


class QueueFull(RuntimeError):
    """The agent's inbox already holds ``max_queue`` tasks: back off, or scale the agent."""


class Bus:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_payload_bytes: int = 1 << 20,
        result_ttl_seconds: int = 86400,
        max_deliveries: int = 5,
        stream_maxlen: int = 10_000,
        max_queue: int = 100_000,
        result_buffer: int = 200_000,
        wait_replicas: int = 0,
    ) -> None:
        for name, value in (
            ("max_payload_bytes", max_payload_bytes),
            ("result_ttl_seconds", result_ttl_seconds),
            ("max_deliveries", max_deliveries),
            ("stream_maxlen", stream_maxlen),
            ("max_queue", max_queue),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Bus({name}=...) must be a positive integer, got {value!r}")
        if not isinstance(wait_replicas, int) or wait_replicas < 0:
            raise ValueError(f"Bus(wait_replicas=...) must be an integer >= 0, got {wait_replicas!r}")
        if wait_replicas and topology.is_cluster(redis):
            raise ValueError("Bus(wait_replicas=...) is for one primary (Sentinel); a Redis Cluster cannot WAIT by key")
        self.redis = redis
        self.max_payload_bytes = max_payload_bytes
        self.result_ttl_seconds = result_ttl_seconds
        self.max_deliveries = max_deliveries
        self.stream_maxlen = stream_maxlen
        self.max_queue = max_queue
        # Replicas that must hold a result before a completion counts as done (WAIT): with Sentinel, so that a
        # failover never loses a result its agent considers stored.
        self.wait_replicas = wait_replicas
        self._library: Library | None = None
        self._loading: asyncio.Task[Library] | None = None
        self._library_hidden = False  # this client may not read the library (its results go unchecked)
        self._fanout = ResultFanout(redis, buffer=result_buffer)
        self._fanout.reread = self._reread_library
        self._reread_at = -math.inf
        self._dispatcher: Coalescer[_DispatchRequest] = Coalescer(self._send_dispatches)

    async def close(self) -> None:
        """Send what was already dispatched, stop the background result reader (the Redis client stays the
        caller's)."""
        await self._dispatcher.aclose()
        await self._fanout.close()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the function library ------------------------------------------------------------------------

    async def library(self, *, reload: bool = False) -> Library:
        """The function library as loaded in Redis, loaded first if it is missing (or ``reload``: re-read, and load
        again if Redis lost it). Raises :class:`podium.dataplane.library.LibraryMissing` for a client that may not
        load it."""
        if self._library is not None and not reload:
            return self._library
        # Concurrent callers share one load and resume in call order (so their dispatches keep that order).
        if self._loading is None or self._loading.done():
            self._loading = asyncio.get_running_loop().create_task(self._load_library())
        return await asyncio.shield(self._loading)

    async def _load_library(self) -> Library:
        self._library = await ensure_library(self.redis, known=self._library)
        self._fanout.library = self._library
        return self._library

    async def _reread_library(self) -> None:
        """After a seal did not verify: the library as Redis holds it now, at most once a second (a forged result
        costs one read). Redis that restarted empty has had it loaded anew, with a new secret."""
        if self._library is None or time.monotonic() - self._reread_at < REREAD_SECONDS:
            return
        self._reread_at = time.monotonic()
        before = self._library.secret
        if (await self.library(reload=True)).secret != before:
            log.warning("the function library's seal secret changed (Redis lost the library and it was loaded again)")

    async def _readable_library(self) -> Library | None:
        """The library if this client may see it (to check seals), else None (a read-only user: the viewer)."""
        if self._library is None and not self._library_hidden:
            try:
                await self.library()
            except LibraryMissing:
                self._library_hidden = True
        return self._library

    async def call(self, name: str, keys: Sequence[Any], args: Sequence[Any], *, read_only: bool = False) -> Any:
        """FCALL (or FCALL_RO) one function of the library; loads the library once if Redis does not have it."""
        for attempt in range(2):
            try:
                if read_only:
                    return await self.redis.fcall_ro(name, len(keys), *keys, *args)
                return await self.redis.fcall(name, len(keys), *keys, *args)
            except ResponseError as exc:
                if attempt or not function_missing(exc):
                    raise
                await self.library(reload=True)
        raise AssertionError("unreachable")

    async def call_and_wait(
        self, name: str, keys: Sequence[Any], args: Sequence[Any], replicas: int
    ) -> tuple[Any, int]:
        """FCALL one function, then WAIT on the same connection until ``replicas`` replicas hold its writes (or the
        timeout): returns (reply, replicas that confirmed). Not for a Cluster, where WAIT names no key to route by."""
        for attempt in range(2):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.fcall(name, len(keys), *keys, *args)
                    pipe.wait(replicas, WAIT_TIMEOUT_MS)
                    reply, acked = await pipe.execute()
                return reply, int(acked)
            except ResponseError as exc:
                if attempt or not function_missing(exc):
                    raise
                await self.library(reload=True)
        raise AssertionError("unreachable")

    async def call_pipelined(self, calls: Sequence[FunctionCall]) -> list[Any]:
        """FCALL each call in one pipeline (no MULTI); replies in order, errors as values. If Redis lost the library,
        it is loaded and only the calls that failed for it (and so did nothing) are sent again."""
        replies, _, _ = await self._pipelined(calls, [None] * len(calls))
        return replies

    async def _pipelined(
        self, calls: Sequence[FunctionCall], before: Sequence[Queue | None]
    ) -> tuple[list[Any], list[BaseException | None], list[list[Any]]]:
        """:meth:`call_pipelined`, each call preceded by the commands its ``before`` queues (first send only);
        also the first error among each call's ``before`` commands, and their replies."""
        replies: list[Any] = [None] * len(calls)
        failed: list[BaseException | None] = [None] * len(calls)
        prefixes: list[list[Any]] = [[] for _ in calls]
        todo = list(range(len(calls)))
        for attempt in range(2):
            spans: list[tuple[int, int]] = []
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    start = len(pipe)
                    queue = before[i] if not attempt else None
                    if queue is not None:
                        queue(pipe)
                    spans.append((start, len(pipe)))
                    name, keys, args = calls[i]
                    pipe.fcall(name, len(keys), *keys, *args)
                got = await pipe.execute(raise_on_error=False)
            missing = []
            for i, (start, end) in zip(todo, spans, strict=True):
                if not attempt:
                    prefixes[i] = list(got[start:end])
                failed[i] = failed[i] or next((r for r in got[start:end] if isinstance(r, Exception)), None)
                reply = got[end]
                replies[i] = reply
                if isinstance(reply, ResponseError) and function_missing(reply):
                    missing.append(i)
            if not missing or attempt:
                break
            await self.library(reload=True)
            todo = missing
        return replies, failed, prefixes

    async def _tail(self, key: str, count: int) -> list[tuple[str, dict[str, str]]]:
        """The last ``count`` entries of a stream, oldest first, decoded to str."""
        rows: Any = await self.redis.xrevrange(key, count=count)
        return [(text(i), fields_of(f)) for i, f in reversed(rows or [])]

    # -- producer -----------------------------------------------------------------------------------

    def _encode(self, task: Task, limit: int) -> bytes:
        raw = task.to_json()
        if len(raw) > limit:
            raise PayloadTooLarge(task.id, len(raw), limit)
        # The list stands for the task object: its depth is the document's.
        check_depth(raw, [task.input, task.meta], f"task {task.id!r}")
        return raw

    async def dispatch(self, task: Task) -> None:
        """Append the task to its agent's inbox. Raises PayloadTooLarge, or QueueFull when the backlog is full.

        Concurrent calls (same event-loop tick, or while a send is in flight) share one pipelined round trip.
        """
        await self.dispatch_many([task])

    async def dispatch_many(
        self, tasks: Sequence[Task], *, before: Queue | None = None, after: After | None = None
    ) -> None:
        """Dispatch many tasks in one pipelined round trip (all are validated before any is sent).

        QueueFull names the first agent whose inbox refused this call's tasks for it; the tasks of this call
        for other agents were dispatched. ``before`` queues the caller's own writes (a run's journal entry) that
        Redis must apply before the tasks are queued: on one server they share the round trip, ahead of the tasks
        in the same pipeline; a Cluster orders nothing across nodes, so there they are sent first, and an error
        among them dispatches nothing. On one server an error among them is raised too, though the tasks went out.
        ``after`` is told their replies (reads among them: a run's next step's reads ride its dispatch), or the
        error that stopped the send, before this call returns.
        """
        if not tasks:
            return
        # Results are checked against the library's seal; this also loads it into a fresh Redis. A producer that
        # may not see it (an agent queueing its own A2A tasks) relies on the dispatch function's own size check.
        library = await self._readable_library()
        limit = min(self.max_payload_bytes, library.max_bytes) if library is not None else self.max_payload_bytes
        by_agent: dict[tuple[str, str], list[tuple[Task, bytes]]] = {}
        for task in tasks:
            by_agent.setdefault((task.namespace, task.agent), []).append((task, self._encode(task, limit)))
        request = _DispatchRequest([(agent_keys(*agent), items) for agent, items in by_agent.items()], before, after)
        for keys, _items in request.agents:
            await self._fanout.watch(keys)
        for task in tasks:
            self._fanout.expect(result_key(task))
        await self._dispatcher.submit(request)

    async def _send_dispatches(self, requests: list[_DispatchRequest]) -> list[BaseException | None]:
        """One pipeline for many dispatch calls: one script call per (call, agent), so each call keeps its own
        all-or-nothing QueueFull check per agent, exactly as if it had been sent alone."""
        try:
            outcomes, told = await self._send_dispatches_told(requests)
        except BaseException as exc:
            for request in requests:
                if request.after is not None:
                    request.after(exc)
            raise
        for request, replies in zip(requests, told, strict=True):
            if request.after is not None:
                request.after(replies)
        return outcomes

    async def _send_dispatches_told(
        self, requests: list[_DispatchRequest]
    ) -> tuple[list[BaseException | None], list[list[Any]]]:
        """:meth:`_send_dispatches`; also each request's replies to its ``before`` commands."""
        cluster = topology.is_cluster(self.redis)
        refused, early = await self._writes_first(requests) if cluster else ([None] * len(requests), [])
        calls: list[FunctionCall] = []
        before: list[Queue | None] = []
        first_call: dict[int, int] = {}  # request -> its first call: the one its ``before`` goes with
        for r, (request, error) in enumerate(zip(requests, refused, strict=True)):
            if error is not None:
                continue
            first_call[r] = len(calls)
            for n, (keys, items) in enumerate(request.agents):
                args: list[Any] = [self.max_queue]
                for task, raw in items:
                    args += [task.id, task.attempt, raw]
                calls.append(("podium_dispatch", [keys.inbox], args))
                before.append(request.before if n == 0 and not cluster else None)
        got, failed, prefixes = await self._pipelined(calls, before)
        told = early if cluster else [prefixes[first_call[r]] if r in first_call else [] for r in range(len(requests))]
        # One caller's ``before`` may queue the writes of others (a run writes the journal entries of all its
        # waiting dispatches at once): an error among them is every such caller's.
        written = next((e for e in failed if e is not None), None)
        replies = iter(got)
        outcomes: list[BaseException | None] = []
        for request, error in zip(requests, refused, strict=True):
            if error is None:
                if request.before is not None:
                    error = written
                for keys, items in request.agents:
                    reply = next(replies)
                    if error is None and isinstance(reply, ResponseError):
                        error = self._dispatch_error(keys, items, reply)
            outcomes.append(error)
        return outcomes, told

    async def _writes_first(
        self, requests: list[_DispatchRequest]
    ) -> tuple[list[BaseException | None], list[list[Any]]]:
        """The requests' ``before`` writes in a round trip of their own; per request, the error that refuses it, and
        its commands' replies. As on one server, an error among them is every caller's that had writes (one may
        queue others')."""
        spans: list[tuple[int, int]] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for request in requests:
                start = len(pipe)
                if request.before is not None:
                    request.before(pipe)
                spans.append((start, len(pipe)))
            got = await pipe.execute(raise_on_error=False) if len(pipe) else []
        error = next((r for r in got if isinstance(r, Exception)), None)
        refused: list[BaseException | None] = [error if r.before is not None else None for r in requests]
        return refused, [list(got[start:end]) for start, end in spans]

    def _dispatch_error(self, keys: AgentKeys, items: list[tuple[Task, bytes]], reply: ResponseError) -> Exception:
        if str(reply).startswith("PAYLOAD"):
            limit = self._library.max_bytes if self._library else self.max_payload_bytes
            return PayloadTooLarge(items[0][0].id, max(len(raw) for _, raw in items), limit)
        if "QUEUEFULL" in str(reply):
            return QueueFull(
                f"agent {keys.namespace}/{keys.agent} cannot take {len(items)} more tasks (limit "
                f"{self.max_queue} queued); task {items[0][0].id!r} and the rest of its batch were not "
                f"dispatched (raise Bus(max_queue=...) or add replicas)"
            )
        return reply

    async def get_result(self, task: Task) -> Result | None:
        """The recorded result of a task, if any; a value without the library's seal (not written by the completion
        function) counts as none."""
        library = await self._readable_library()
        raw = await self.redis.get(result_key(task))
        if raw is None:
            return None
        result = open_result(library, task.id, raw, warn=False)
        if result is None:
            await self._reread_library()
            result = open_result(self._library if library is not None else None, task.id, raw)
        return result

    async def wait_result(self, task: Task, timeout: float) -> Result | None:  # noqa: ASYNC109
        await self._readable_library()
        got = await self._fanout.wait([task], timeout)
        return got.get(task.id)

    async def wait_results(self, tasks: Sequence[Task], timeout: float) -> dict[str, Result]:  # noqa: ASYNC109
        """Results by task id of those tasks that finished within ``timeout`` seconds (missing ones absent)."""
        await self._readable_library()
        return await self._fanout.wait(tasks, timeout)

    def consumer(
        self, namespace: str, agent: str, replica: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> InboxConsumer:
        return InboxConsumer(self, namespace, agent, replica, lease_seconds=lease_seconds)

    # -- events and direct messages ---------------------------------------------------------------

    def _event_fields(
        self, type: str, payload: Any, sender: str, run: str = "", at: float | None = None
    ) -> dict[str, str]:
        if not type:
            raise ValueError("event type must not be empty")
        body = encode_json(payload)
        if len(body) > self.max_payload_bytes:
            raise PayloadTooLarge(f"event {type}", len(body), self.max_payload_bytes)
        return event_fields(type, body, sender, time.time() if at is None else at, run)

    async def _append_event(self, key: str, type: str, payload: Any, sender: str, run: str = "") -> str:
        entry = await self.redis.xadd(
            key,
            self._event_fields(type, payload, sender, run),  # type: ignore[arg-type]
            maxlen=self.stream_maxlen,
            approximate=True,
        )
        return text(entry)

    def queue_publish(
        self, pipe: Pipeline, orchestration: str, type: str, payload: Any, sender: str, at: float | None = None
    ) -> None:
        """:meth:`publish` as a command on the caller's pipeline (sent with its other writes); ``at``: when it
        happened, if before now (the history orders a run's events and steps by their times)."""
        pipe.xadd(
            orchestration_keys(orchestration).events,
            self._event_fields(type, payload, sender, at=at),  # type: ignore[arg-type]
            maxlen=self.stream_maxlen,
            approximate=True,
        )

    async def publish(self, orchestration: str, type: str, payload: Any, sender: str) -> str:
        """A message on the run's event stream: its history, and what its subscribed agents are told."""
        return await self._append_event(orchestration_keys(orchestration).events, type, payload, sender)

    async def send_direct(
        self, namespace: str, to_agent: str, type: str, payload: Any, sender: str, *, orchestration: str = ""
    ) -> str:
        """A message on the agent's direct stream (its message history), marked with its run if it has one."""
        return await self._append_event(AgentKeys(namespace, to_agent).direct, type, payload, sender, orchestration)

    def subscribe(
        self, orchestration: str, types: Collection[str] | None = None, from_id: str = "$"
    ) -> AsyncIterator[Event]:
        """Events of an orchestration as they are published (from_id "$" = only new ones, "0" = all kept)."""
        return self._follow(OrchestrationKeys.of(orchestration).events, types, from_id)

    async def _follow(self, key: str, types: Collection[str] | None, from_id: str) -> AsyncIterator[Event]:
        wanted = set(types) if types is not None else None
        if from_id == "$":
            # Pin "$" to a concrete id once, or events published between two reads would be skipped.
            last = await self._tail(key, 1)
            from_id = last[0][0] if last else "0-0"
        while True:
            reply: Any = await self.redis.xread({key: from_id}, count=500, block=1000)
            reraise_swallowed_cancel()
            for _stream, entries in reply.items() if isinstance(reply, dict) else reply or []:
                for entry_id, raw_fields in entries:
                    from_id = text(entry_id)
                    event = parse_event(from_id, fields_of(raw_fields))
                    if wanted is None or event.type in wanted:
                        yield event

    async def history(
        self, *, agent: tuple[str, str] | None = None, orchestration: str | None = None, limit: int = 100
    ) -> list[Event]:
        """The last ``limit`` messages, oldest first: an orchestration's events, or an agent's conversation
        (direct messages to it and its results, type "result", sender "<agent>/<replica>")."""
        if (agent is None) == (orchestration is None):
            raise ValueError("history() needs exactly one of agent=(namespace, name) or orchestration='ns/name'")
        if limit < 1:
            return []
        if orchestration is not None:
            rows = await self._tail(OrchestrationKeys.of(orchestration).events, limit)
            return [parse_event(i, f) for i, f in rows]
        assert agent is not None
        keys = AgentKeys(*agent)
        library = await self._readable_library()
        events = [parse_event(i, f) for i, f in await self._tail(keys.direct, limit)]
        for i, fields in await self._tail(keys.results, limit):
            result = sealed_result(library, fields)
            if result is None:
                continue
            events.append(
                Event(
                    id=i,
                    type="result",
                    sender=f"{keys.agent}/{result.replica}",
                    payload=result.to_dict(),
                    at=result.finished_at,
                )
            )
        # Ids of two streams tie within one millisecond (each restarts its sequence): the sender's clock breaks it.
        events.sort(key=lambda e: (stream_id_key(e.id)[0], e.at, stream_id_key(e.id)[1]))
        return events[-limit:]

    # -- operations --------------------------------------------------------------------------------

    async def dead_letters(self, namespace: str, agent: str, limit: int = 100) -> list[DeadLetter]:
        """The last ``limit`` dead letters of an agent, oldest first."""
        rows = await self._tail(AgentKeys(namespace, agent).dlq, limit)
        return [parse_dead_letter(f) for _i, f in rows]

    async def replicas(self, namespace: str, agent: str) -> list[ReplicaInfo]:
        reply = await self.call("podium_replicas", [AgentKeys(namespace, agent).heartbeats], [], read_only=True)
        return _replicas(reply)

    async def replicas_many(self, namespace: str, agents: Sequence[str]) -> dict[str, list[ReplicaInfo]]:
        """:meth:`replicas` of many agents in one round trip (a run reads its agents' loads when it starts)."""
        calls: list[FunctionCall] = [("podium_replicas", [AgentKeys(namespace, a).heartbeats], []) for a in agents]
        replies = await self.call_pipelined(calls)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return {agent: _replicas(reply) for agent, reply in zip(agents, replies, strict=True)}

    async def cancel(self, orchestration: str, agents: Iterable[str], uid: str | None = None) -> dict[str, int]:
        """Stop an orchestration's queued tasks on these agents: undelivered ones are deleted (count by agent
        returned), delivered ones are settled by their consumer as cancelled without running. Tasks already
        handed to a replica's code finish. See :mod:`podium.dataplane.cancellation`."""
        return await cancellation.cancel(self, orchestration, agents, uid)

    async def withdraw(self, task: Task) -> bool:
        """Take back one task of an orchestration that no longer waits for it (True: deleted while still queued).
        See :func:`podium.dataplane.cancellation.withdraw`."""
        return await cancellation.withdraw(self, task)

    async def queued(self, task: Task) -> bool:
        """Whether ``task`` still waits in its agent's inbox, handed to no replica (read only).
        See :func:`podium.dataplane.cancellation.queued`."""
        return await cancellation.queued(self, task)

    async def cancelled(self, task: Task) -> bool:
        """Whether ``task``'s run is marked cancelled on its agent, or the attempt withdrawn (read only).
        See :func:`podium.dataplane.cancellation.cancelled`."""
        return await cancellation.cancelled(self, task)

    async def queue_depth(self, namespace: str, agent: str) -> int:
        """Tasks not yet completed: undelivered plus in flight (acknowledged entries are deleted)."""
        return int(await self.redis.xlen(AgentKeys(namespace, agent).inbox))

    async def in_flight(self, namespace: str, agent: str) -> int:
        """Tasks delivered to a replica and not yet completed."""
        try:
            summary = await self.redis.xpending(AgentKeys(namespace, agent).inbox, GROUP)
        except ResponseError:  # no inbox or no group yet
            return 0
        return int(summary.get("pending", 0)) if isinstance(summary, dict) else 0


def _replicas(reply: Any) -> list[ReplicaInfo]:
    """The live replicas in a ``podium_replicas`` reply (Redis's time first, then name, value pairs)."""
    items = [text(x) for x in reply[1:]]
    return sorted((parse_replica(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)), key=lambda r: r.replica)
