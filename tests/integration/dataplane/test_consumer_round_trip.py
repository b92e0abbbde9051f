"""The cancelled check rides along with the inbox read: one round trip per batch, and the set is still fresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.consumer import InboxConsumer
from podium.dataplane.messages import Task
from podium.dataplane.purge import purge_agent
from podium_localcluster.redis_server import RedisServer


def task(ns: str, orch: str, i: int) -> Task:
    return Task(id=f"{orch}-{i}", kind="execute", input=i, namespace=ns, agent="worker", orchestration=f"{ns}/{orch}")


class CountingConnection(aioredis.Connection):
    """A real connection that counts its writes: a command or a whole pipeline is one write, one round trip."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).writes += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted_bus(redis_server: RedisServer) -> AsyncIterator[tuple[Bus, type[CountingConnection]]]:
    """A Bus whose client counts round trips (a class of its own per test, so counts never mix)."""
    counter = type("Counter", (CountingConnection,), {"writes": 0})
    pool = aioredis.ConnectionPool(host=redis_server.host, port=redis_server.port, connection_class=counter)
    client = aioredis.Redis(connection_pool=pool)
    b = Bus(client)
    yield b, counter
    await b.close()
    await client.aclose()


async def warm(consumer: InboxConsumer, bus: Bus, ns: str) -> None:
    # The first fetch joins the group, heartbeats, recovers its own pending entries and reclaims; after it
    # (with a long lease) a fetch is only the read itself. It also shows the consumer orchestration work.
    await bus.dispatch(task(ns, "b", 0))
    assert [d.task.id for d in await consumer.fetch(8, 0)] == ["b-0"]


async def test_a_batch_of_orchestration_work_takes_one_round_trip(
    counted_bus: tuple[Bus, type[CountingConnection]], bus: Bus, ns: str
) -> None:
    counted, counter = counted_bus
    consumer = counted.consumer(ns, "worker", "r1", lease_seconds=600)
    await warm(consumer, bus, ns)
    await bus.dispatch_many([task(ns, "b", i) for i in range(1, 4)])

    before = counter.writes
    got = await consumer.fetch(8, 0)

    assert [d.task.id for d in got] == ["b-1", "b-2", "b-3"]
    assert counter.writes - before == 1, "the read and the cancelled-set check went out in one round trip"


async def test_a_cancel_made_while_the_read_blocks_still_stops_the_task(bus: Bus, ns: str) -> None:
    consumer = bus.consumer(ns, "worker", "r1", lease_seconds=600)
    await warm(consumer, bus, ns)
    fetch = asyncio.create_task(consumer.fetch(8, 5000))
    await asyncio.sleep(0.1)  # the read is blocked on the empty inbox now
    await bus.cancel(f"{ns}/a", ["worker"])
    straggler = task(ns, "a", 1)  # sent after the cancel (a late dispatch): it wakes the blocked read
    await bus.dispatch(straggler)

    assert await asyncio.wait_for(fetch, 5) == []
    got = await bus.get_result(straggler)
    assert got is not None and not got.ok
    assert got.error == f"cancelled: orchestration {ns}/a was deleted or its run ended"


async def test_a_purged_inbox_is_recreated_and_read_again(bus: Bus, ns: str) -> None:
    consumer = bus.consumer(ns, "worker", "r1", lease_seconds=600)
    await warm(consumer, bus, ns)
    await purge_agent(bus.redis, ns, "worker")

    assert await consumer.fetch(8, 0) == []  # NOGROUP: the group is made again, nothing lost or raised
    await bus.dispatch(task(ns, "b", 1))
    assert [d.task.id for d in await consumer.fetch(8, 0)] == ["b-1"]
