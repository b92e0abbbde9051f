"""The message bus over Redis Streams: task inboxes with results, events, direct messages, history, DLQ.

Key schema in :mod:`podium.dataplane.keys`, scripts in :mod:`podium.dataplane.scripts`; the consumer side is
:class:`podium.dataplane.consumer.InboxConsumer`. See docs/data-plane.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from podium.dataplane import cancellation, scripts
from podium.dataplane.coalesce import Coalescer
from podium.dataplane.consumer import DEFAULT_LEASE_SECONDS, InboxConsumer, reraise_swallowed_cancel
from podium.dataplane.keys import GROUP, AgentKeys, OrchestrationKeys, agent_keys
from podium.dataplane.messages import PayloadTooLarge, Result, Task, encode_json
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
from podium.dataplane.results import ResultFanout, result_key

__all__ = [
    "Bus",
    "DeadLetter",
    "Delivery",
    "Event",
    "InboxConsumer",
    "QueueFull",
    "ReplicaInfo",
]


# One dispatch call's tasks, grouped by agent inbox.
_DispatchRequest = list[tuple[AgentKeys, list[tuple[Task, bytes]]]]


class QueueFull(RuntimeError):
    """The agent's inbox already holds ``max_queue`` tasks: back off, or scale the agent."""


class _Scripts:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.dispatch: AsyncScript = redis.register_script(scripts.DISPATCH)
        self.complete: AsyncScript = redis.register_script(scripts.COMPLETE)
        self.heartbeat: AsyncScript = redis.register_script(scripts.HEARTBEAT)
        self.live_replicas: AsyncScript = redis.register_script(scripts.LIVE_REPLICAS)
        self.reclaim: AsyncScript = redis.register_script(scripts.RECLAIM)
        self.dead_letter: AsyncScript = redis.register_script(scripts.DEAD_LETTER)
        self.release: AsyncScript = redis.register_script(scripts.RELEASE)
        self.leave: AsyncScript = redis.register_script(scripts.LEAVE)
        self.dispatch_many: AsyncScript = redis.register_script(scripts.DISPATCH_MANY)
        self.complete_many: AsyncScript = redis.register_script(scripts.COMPLETE_MANY)
        self.cancel: AsyncScript = redis.register_script(scripts.CANCEL)


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
        self.redis = redis
        self.max_payload_bytes = max_payload_bytes
        self.result_ttl_seconds = result_ttl_seconds
        self.max_deliveries = max_deliveries
        self.stream_maxlen = stream_maxlen
        self.max_queue = max_queue
        self.scripts = _Scripts(redis)
        self._fanout = ResultFanout(redis, buffer=result_buffer)
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

    async def _tail(self, key: str, count: int) -> list[tuple[str, dict[str, str]]]:
        """The last ``count`` entries of a stream, oldest first, decoded to str."""
        rows: Any = await self.redis.xrevrange(key, count=count)
        return [(text(i), fields_of(f)) for i, f in reversed(rows or [])]

    # -- producer -----------------------------------------------------------------------------------

    def _encode(self, task: Task) -> bytes:
        raw = task.to_json()
        if len(raw) > self.max_payload_bytes:
            raise PayloadTooLarge(task.id, len(raw), self.max_payload_bytes)
        return raw

    async def dispatch(self, task: Task) -> None:
        """Append the task to its agent's inbox. Raises PayloadTooLarge, or QueueFull when the backlog is full.

        Concurrent calls (same event-loop tick, or while a send is in flight) share one pipelined round trip.
        """
        await self.dispatch_many([task])

    async def dispatch_many(self, tasks: Sequence[Task]) -> None:
        """Dispatch many tasks in one pipelined round trip (all are validated before any is sent).

        QueueFull names the first agent whose inbox refused this call's tasks for it; the tasks of this call
        for other agents were dispatched.
        """
        if not tasks:
            return
        by_agent: dict[tuple[str, str], list[tuple[Task, bytes]]] = {}
        for task in tasks:
            by_agent.setdefault((task.namespace, task.agent), []).append((task, self._encode(task)))
        request = [(agent_keys(*agent), items) for agent, items in by_agent.items()]
        for keys, _items in request:
            await self._fanout.watch(keys)
        for task in tasks:
            self._fanout.expect(result_key(task))
        await self._dispatcher.submit(request)

    async def _send_dispatches(self, requests: list[_DispatchRequest]) -> list[BaseException | None]:
        """One pipeline for many dispatch calls: one script call per (call, agent), so each call keeps its own
        all-or-nothing QueueFull check per agent, exactly as if it had been sent alone."""
        calls: list[tuple[AsyncScript, list[Any], list[Any]]] = []
        for request in requests:
            for keys, items in request:
                if len(items) == 1:
                    calls.append((self.scripts.dispatch, [keys.inbox], [items[0][1], self.max_queue]))
                else:
                    calls.append((self.scripts.dispatch_many, [keys.inbox], [self.max_queue, *(r for _, r in items)]))
        replies = iter(await self._evalsha_pipelined(calls))
        outcomes: list[BaseException | None] = []
        for request in requests:
            error: BaseException | None = None
            for keys, items in request:
                reply = next(replies)
                if error is None and isinstance(reply, ResponseError):
                    error = self._dispatch_error(keys, items, reply)
            outcomes.append(error)
        return outcomes

    def _dispatch_error(self, keys: AgentKeys, items: list[tuple[Task, bytes]], reply: ResponseError) -> Exception:
        if "QUEUEFULL" in str(reply):
            return QueueFull(
                f"agent {keys.namespace}/{keys.agent} cannot take {len(items)} more tasks (limit "
                f"{self.max_queue} queued); task {items[0][0].id!r} and the rest of its batch were not "
                f"dispatched (raise Bus(max_queue=...) or add replicas)"
            )
        return reply

    async def _evalsha_pipelined(self, calls: list[tuple[AsyncScript, list[Any], list[Any]]]) -> list[Any]:
        """EVALSHA each call in one pipeline; replies in order, errors as values.

        Plain EVALSHA rather than redis-py's script-in-pipeline, which sends SCRIPT EXISTS first: a second
        round trip on every pipeline. A script the server lost (restart, SCRIPT FLUSH) is loaded and only
        the calls that failed with NOSCRIPT (and so did nothing) are sent again.
        """
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    script, keys, args = calls[i]
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                got = await pipe.execute(raise_on_error=False)
            missing = []
            for i, reply in zip(todo, got, strict=True):
                replies[i] = reply
                if isinstance(reply, NoScriptError):
                    missing.append(i)
            if not missing or attempt:
                break
            for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
                script.sha = text(await self.redis.script_load(script.script))
            todo = missing
        return replies

    async def get_result(self, task: Task) -> Result | None:
        raw = await self.redis.get(AgentKeys(task.namespace, task.agent).result(task.id))
        return None if raw is None else Result.from_json(raw)

    async def wait_result(self, task: Task, timeout: float) -> Result | None:  # noqa: ASYNC109
        got = await self._fanout.wait([task], timeout)
        return got.get(task.id)

    async def wait_results(self, tasks: Sequence[Task], timeout: float) -> dict[str, Result]:  # noqa: ASYNC109
        """Results by task id of those tasks that finished within ``timeout`` seconds (missing ones absent)."""
        return await self._fanout.wait(tasks, timeout)

    def consumer(
        self, namespace: str, agent: str, replica: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> InboxConsumer:
        return InboxConsumer(self, namespace, agent, replica, lease_seconds=lease_seconds)

    # -- events and direct messages ---------------------------------------------------------------

    def _event_fields(self, type: str, payload: Any, sender: str, run: str = "") -> dict[str, str]:
        if not type:
            raise ValueError("event type must not be empty")
        body = encode_json(payload)
        if len(body) > self.max_payload_bytes:
            raise PayloadTooLarge(f"event {type}", len(body), self.max_payload_bytes)
        return event_fields(type, body, sender, time.time(), run)

    async def _append_event(self, key: str, type: str, payload: Any, sender: str, run: str = "") -> str:
        entry = await self.redis.xadd(
            key,
            self._event_fields(type, payload, sender, run),  # type: ignore[arg-type]
            maxlen=self.stream_maxlen,
            approximate=True,
        )
        return text(entry)

    async def publish(self, orchestration: str, type: str, payload: Any, sender: str) -> str:
        """A message on the run's event stream: its history, and what its subscribed agents are told."""
        return await self._append_event(OrchestrationKeys.of(orchestration).events, type, payload, sender)

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
        events = [parse_event(i, f) for i, f in await self._tail(keys.direct, limit)]
        for i, fields in await self._tail(keys.results, limit):
            result = Result.from_json(fields.get("r", "{}")) if fields.get("r") else None
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
        reply = await self.scripts.live_replicas(keys=[AgentKeys(namespace, agent).heartbeats])
        items = [text(x) for x in reply[1:]]
        return sorted(
            (parse_replica(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)), key=lambda r: r.replica
        )

    async def cancel(self, orchestration: str, agents: Iterable[str], uid: str | None = None) -> dict[str, int]:
        """Stop an orchestration's queued tasks on these agents: undelivered ones are deleted (count by agent
        returned), delivered ones are settled by their consumer as cancelled without running. Tasks already
        handed to a replica's code finish. See :mod:`podium.dataplane.cancellation`."""
        return await cancellation.cancel(self, self.scripts.cancel, orchestration, agents, uid)

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
