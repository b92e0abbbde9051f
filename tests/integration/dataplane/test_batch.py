"""The Batcher against a real redis-server: concurrent callers share one round trip and each gets its own replies;
one caller's bad input or failed command is its own; and outcomes counted together make the same record as one by
one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from podium.dataplane import perf
from podium.dataplane.batch import Batcher
from podium.dataplane.keys import agent_keys
from podium.dataplane.perf import Failure, Outcome, PerfRecord
from podium_localcluster.redis_server import RedisServer


class Counting(aioredis.Connection):
    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).writes += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted(redis_server: RedisServer) -> AsyncIterator[tuple[aioredis.Redis, type[Counting]]]:
    counter = type("Counter", (Counting,), {"writes": 0})
    pool = aioredis.ConnectionPool(host=redis_server.host, port=redis_server.port, connection_class=counter)
    client = aioredis.Redis(connection_pool=pool)
    await client.ping()
    yield client, counter
    await client.aclose()


async def test_concurrent_callers_share_one_round_trip_and_each_gets_its_replies(
    counted: tuple[aioredis.Redis, type[Counting]],
) -> None:
    client, counter = counted
    batch, key = Batcher(client), f"t:{uuid.uuid4().hex}"
    before = counter.writes
    got = await asyncio.gather(
        *(batch.run(lambda pipe, i=i: (pipe.incrby(key, i), pipe.get(key))) for i in range(1, 9))
    )
    assert counter.writes - before == 1
    assert [int(r[0]) for r in got] == [sum(range(1, i + 1)) for i in range(1, 9)], "in submit order"
    assert [int(r[1]) for r in got] == [int(r[0]) for r in got]


async def test_a_callers_bad_input_or_failed_command_is_its_own(counted: tuple[aioredis.Redis, type[Counting]]) -> None:
    client, _ = counted
    batch, key, text = Batcher(client), f"t:{uuid.uuid4().hex}", f"s:{uuid.uuid4().hex}"
    await client.set(text, "not a number")

    def bad(pipe: Any) -> None:
        pipe.incr(key)
        raise ValueError("cannot encode this")

    told: list[Any] = []
    results = await asyncio.gather(
        batch.run(lambda pipe: pipe.incr(key)),
        batch.run(bad, told.append),
        batch.run(lambda pipe: pipe.incr(text)),
        batch.run(lambda pipe: pipe.incr(key)),
        return_exceptions=True,
    )
    assert results[0] == [1] and results[3] == [2], "the bad caller's command was taken back"
    assert isinstance(results[1], ValueError) and told == [results[1]]
    assert isinstance(results[2], ResponseError)


async def test_outcomes_counted_together_make_the_record_counted_one_by_one(client: aioredis.Redis) -> None:
    outcomes = [
        Outcome(True, 10.0, 0.5),
        Outcome(False, 20.0, None, Failure("t-2", "boom", 1.0)),
        *[Outcome(True, 1.0) for _ in range(12)],
        Outcome(False, 5.0, None, Failure("t-15", "late", 2.0)),
        Outcome(True, 2.5, 1.0),
    ]
    one, many = agent_keys("ns", f"a{uuid.uuid4().hex[:8]}"), agent_keys("ns", f"b{uuid.uuid4().hex[:8]}")
    for o in outcomes:
        async with client.pipeline(transaction=False) as pipe:
            perf.queue_record(pipe, one, o.ok, o.duration_ms, o.quality, o.failure)
            await pipe.execute()
    async with client.pipeline(transaction=False) as pipe:
        perf.queue_records(pipe, many, outcomes)
        assert len(pipe) <= 9, "a handful of commands, however many outcomes"
        await pipe.execute()
    read = await perf.read_many(client, "ns", [one.agent, many.agent], PerfRecord)
    assert read[one.agent] == read[many.agent]
    assert read[many.agent].completed == 14 and read[many.agent].recent[0] is True
    assert [f.task for f in read[many.agent].failures] == ["t-15", "t-2"]
