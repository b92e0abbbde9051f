"""The backlog the autoscaler acts on, read from a real redis-server as the operator's health round reads it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.consumer import InboxConsumer
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import Result, Task
from podium.operator.agents import redis_io
from podium_localcluster.redis_server import RedisServer


@pytest.fixture
async def bus(redis_server: RedisServer) -> AsyncIterator[Bus]:
    r = aioredis.Redis(host=redis_server.host, port=redis_server.port)
    yield Bus(r)
    await r.aclose()


async def backlog(bus: Bus, ns: str, agent: str) -> int | None:
    return (await redis_io.read_runtime(bus.redis, ns, agent)).backlog


async def test_backlog_counts_undelivered_and_in_flight_tasks(bus: Bus) -> None:
    ns, agent = f"bl-{uuid.uuid4().hex[:6]}", "worker"
    assert await backlog(bus, ns, agent) == 0  # no inbox at all yet
    tasks = [Task(id=f"t{i}", kind="echo", input=i, namespace=ns, agent=agent) for i in range(5)]
    await bus.dispatch_many(tasks)
    assert await backlog(bus, ns, agent) == 5  # no replica has created the group yet

    consumer = InboxConsumer(bus, ns, agent, "r0")
    await consumer.join()
    assert await backlog(bus, ns, agent) == 5
    got = await consumer.fetch(2, block_ms=100)
    assert len(got) == 2
    assert await backlog(bus, ns, agent) == 5  # 3 waiting + 2 in flight

    await consumer.complete(got[0], Result(task_id=got[0].task.id, attempt=got[0].task.attempt, ok=True))
    assert await backlog(bus, ns, agent) == 4
    await consumer.release(got[1])  # handed back on shutdown: still work to do
    assert await backlog(bus, ns, agent) == 4

    rest = await consumer.fetch(10, block_ms=100)
    assert len(rest) == 4
    await consumer.complete_many([(d, Result(task_id=d.task.id, attempt=d.task.attempt, ok=True)) for d in rest])
    assert await backlog(bus, ns, agent) == 0


async def test_a_deleted_queued_task_leaves_the_backlog_even_where_redis_loses_the_lag(bus: Bus) -> None:
    ns, agent = f"bl-{uuid.uuid4().hex[:6]}", "worker"
    inbox = AgentKeys(ns, agent).inbox
    await bus.dispatch_many([Task(id=f"t{i}", kind="echo", input=i, namespace=ns, agent=agent) for i in range(5)])
    consumer = InboxConsumer(bus, ns, agent, "r0")
    await consumer.join()
    assert len(await consumer.fetch(1, block_ms=100)) == 1
    # Deleting an undelivered entry behind the group's position (as cancelling a queued task does) leaves Redis
    # unable to report the lag.
    entries = await bus.redis.xrange(inbox)
    assert entries is not None
    later = entries[3][0]
    assert later is not None
    await bus.redis.xdel(inbox, later)
    assert (await bus.redis.xinfo_groups(inbox))[0]["lag"] is None
    assert await backlog(bus, ns, agent) == 4  # 1 in flight + 3 waiting


async def test_dead_letters_are_counted_apart_from_the_backlog(bus: Bus) -> None:
    ns, agent = f"bl-{uuid.uuid4().hex[:6]}", "worker"
    assert (await redis_io.read_runtime(bus.redis, ns, agent)).dead_letters == 0
    inbox = AgentKeys(ns, agent).inbox
    await bus.dispatch_many([Task(id="good", kind="echo", input=1, namespace=ns, agent=agent)])
    await bus.redis.xadd(inbox, {"t": "{not json"})  # what a broken producer might write
    consumer = InboxConsumer(bus, ns, agent, "r0")
    got = await consumer.fetch(10, block_ms=100)
    assert [d.task.id for d in got] == ["good"]
    runtime = await redis_io.read_runtime(bus.redis, ns, agent)
    assert runtime.dead_letters == 1 and runtime.backlog == 1
