"""Concurrent dispatch() calls share round trips: nothing is lost or duplicated, each caller hears its own error."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from podium.dataplane.bus import Bus, QueueFull
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import PayloadTooLarge, Result, Task


def task(ns: str, i: int, agent: str = "worker", size: int = 0) -> Task:
    return Task(id=f"t{i}", kind="execute", input={"n": i, "pad": "x" * size}, namespace=ns, agent=agent)


async def inbox_ids(client: aioredis.Redis, ns: str, agent: str = "worker") -> list[str]:
    rows: Any = await client.xrange(AgentKeys(ns, agent).inbox)
    return [json.loads(fields[b"t"])["id"] for _id, fields in rows]


async def script_exists_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))


async def test_concurrent_dispatches_all_arrive_once_in_call_order(client: aioredis.Redis, ns: str) -> None:
    async with Bus(client) as bus:
        before = await script_exists_calls(client)
        tasks = [task(ns, i) for i in range(500)]
        await asyncio.gather(*(bus.dispatch(t) for t in tasks))
        await asyncio.gather(bus.dispatch_many(tasks[:0]), bus.dispatch_many([task(ns, 500), task(ns, 501)]))
        assert await inbox_ids(client, ns) == [f"t{i}" for i in range(502)]
        # No SCRIPT EXISTS round trip ahead of each pipeline.
        assert await script_exists_calls(client) == before


async def test_writes_before_the_tasks_land_first_and_a_failed_one_is_every_writers_error(
    client: aioredis.Redis, ns: str
) -> None:
    journal, broken = f"{ns}:journal", f"{ns}:broken"
    await client.set(broken, "a string, not a hash")
    async with Bus(client) as bus:
        seen: list[int] = []
        # What a run's journal entry is: written, then its task queued, in one round trip.
        await bus.dispatch_many([task(ns, 0)], before=lambda pipe: pipe.hset(journal, "t0", "dispatched"))
        assert await client.hget(journal, "t0") == b"dispatched" and await inbox_ids(client, ns) == ["t0"]
        # Parallel steps: one caller's writes may stand for others', so an error among them is each writer's.
        outcomes = await asyncio.gather(
            bus.dispatch_many([task(ns, 1)], before=lambda pipe: pipe.hset(broken, "t1", "x")),
            bus.dispatch_many([task(ns, 2)], before=lambda pipe: seen.append(len(pipe))),
            bus.dispatch(task(ns, 3)),  # no writes of its own: not concerned
            return_exceptions=True,
        )
        assert "WRONGTYPE" in str(outcomes[0]) and outcomes[1] is outcomes[0] and outcomes[2] is None
        assert seen, "every caller's writes were queued"


async def test_each_caller_gets_its_own_error_and_the_others_are_sent(client: aioredis.Redis, ns: str) -> None:
    async with Bus(client, max_queue=2, max_payload_bytes=2000) as bus:
        await bus.dispatch_many([task(ns, 0, agent="full"), task(ns, 1, agent="full")])
        outcomes = await asyncio.gather(
            bus.dispatch(task(ns, 2)),
            bus.dispatch(task(ns, 3, agent="full")),  # that inbox is full
            bus.dispatch(task(ns, 4, size=5000)),  # over the payload limit
            bus.dispatch_many([task(ns, 5, agent="other"), task(ns, 6, agent="other")]),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[3] is None
        assert isinstance(outcomes[1], QueueFull) and "t3" in str(outcomes[1]) and "full" in str(outcomes[1])
        assert isinstance(outcomes[2], PayloadTooLarge)
        assert await inbox_ids(client, ns) == ["t2"]
        assert await inbox_ids(client, ns, "full") == ["t0", "t1"]
        assert await inbox_ids(client, ns, "other") == ["t5", "t6"]


async def test_a_full_inbox_refuses_a_whole_call_not_its_neighbours_in_the_batch(
    client: aioredis.Redis, ns: str
) -> None:
    # Two calls for the same agent share a pipeline; each is checked against the limit on its own, as if alone.
    async with Bus(client, max_queue=3) as bus:
        outcomes = await asyncio.gather(
            bus.dispatch_many([task(ns, 0), task(ns, 1)]),
            bus.dispatch_many([task(ns, 2), task(ns, 3)]),
            bus.dispatch(task(ns, 4)),
            return_exceptions=True,
        )
        assert outcomes[0] is None
        assert isinstance(outcomes[1], QueueFull)  # 2 queued + these 2 would exceed 3: none of them goes in
        assert outcomes[2] is None
        assert await inbox_ids(client, ns) == ["t0", "t1", "t4"]


async def test_dispatch_survives_a_script_flush_without_duplicates(client: aioredis.Redis, ns: str) -> None:
    async with Bus(client) as bus:
        await bus.dispatch(task(ns, 0))
        await client.script_flush()
        await asyncio.gather(bus.dispatch(task(ns, 1)), bus.dispatch_many([task(ns, 2), task(ns, 3)]))
        assert await inbox_ids(client, ns) == ["t0", "t1", "t2", "t3"]


async def test_a_caller_cancelled_before_the_send_dispatches_nothing(client: aioredis.Redis, ns: str) -> None:
    async with Bus(client) as bus:
        await bus.dispatch(task(ns, 0))  # the result stream is watched: dispatch goes straight to the batcher
        doomed = asyncio.create_task(bus.dispatch(task(ns, 1)))
        kept = asyncio.create_task(bus.dispatch(task(ns, 2)))
        await asyncio.sleep(0)  # both are queued, the send has not started
        doomed.cancel()
        await kept
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert await inbox_ids(client, ns) == ["t0", "t2"]


async def test_a_failed_send_fails_every_caller_in_it() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry_on_error=[])
    bus = Bus(dead)
    bus._fanout._streams[AgentKeys("x", "worker").results] = "0-0"  # skip the reader's own (failing) read
    try:
        outcomes = await asyncio.gather(bus.dispatch(task("x", 1)), bus.dispatch(task("x", 2)), return_exceptions=True)
        assert all(isinstance(o, RedisConnectionError) for o in outcomes), outcomes
    finally:
        bus._fanout._streams.clear()
        await bus.close()
        await dead.aclose()


async def test_results_of_batched_dispatches_reach_their_waiters(client: aioredis.Redis, ns: str) -> None:
    async with Bus(client) as bus:
        consumer = bus.consumer(ns, "worker", "r1")
        await consumer.join()
        tasks = [task(ns, i) for i in range(200)]

        async def one(t: Task) -> Result | None:
            await bus.dispatch(t)
            return await bus.wait_result(t, 10)

        async def work() -> None:
            done = 0
            while done < len(tasks):
                batch = await consumer.fetch(64, 200)
                await consumer.complete_many(
                    [(d, Result(d.task.id, d.task.attempt, True, output=d.task.input["n"])) for d in batch]
                )
                done += len(batch)

        results, _ = await asyncio.gather(asyncio.gather(*(one(t) for t in tasks)), work())
        assert [r.output if r else None for r in results] == list(range(200))


async def test_overlapping_waits_each_get_their_results_and_a_timeout_returns_what_finished(
    client: aioredis.Redis, ns: str
) -> None:
    async with Bus(client) as bus:
        consumer = bus.consumer(ns, "worker", "r1")
        await consumer.join()
        tasks = [task(ns, i) for i in range(6)]
        await bus.dispatch_many(tasks)
        wide = asyncio.create_task(bus.wait_results(tasks, 5))  # all six
        narrow = asyncio.create_task(bus.wait_results(tasks[:2], 5))  # two of the same
        partial = asyncio.create_task(bus.wait_results(tasks[3:], 0.5))  # one of its three never finishes here
        deliveries = await consumer.fetch(6, 1000)
        await consumer.complete_many(
            [(d, Result(d.task.id, d.task.attempt, True, output=d.task.input["n"])) for d in deliveries[:5]]
        )
        got_partial = await partial
        assert sorted(got_partial) == ["t3", "t4"]
        assert sorted(r.output for r in (await narrow).values()) == [0, 1]
        await consumer.complete(deliveries[5], Result("t5", 1, True, output=5))
        assert sorted(r.output for r in (await wide).values()) == list(range(6))
