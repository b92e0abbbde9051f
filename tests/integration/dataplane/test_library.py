"""The function library as the operator keeps it, on a redis-server of the test's own (it flushes functions)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from podium.dataplane import provision
from podium.dataplane.bus import Bus
from podium.dataplane.library import is_current, read_library
from podium.dataplane.messages import Result, Task
from podium.dataplane.results import result_key
from podium_localcluster.redis_server import RedisServer


@pytest.fixture
async def fresh() -> AsyncIterator[aioredis.Redis]:
    with RedisServer() as server:
        client = aioredis.Redis.from_url(server.url)
        yield client
        await client.aclose()


async def calls(client: aioredis.Redis, command: str) -> int:
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_applying_many_agents_reads_the_library_code_only_when_it_must_be_loaded(
    fresh: aioredis.Redis,
) -> None:
    await provision.ensure_agent(fresh, "ns", "a0", "agent-a0", "pw-a0-123")  # an empty Redis: loaded
    assert await is_current(fresh)
    secret = (await read_library(fresh)).secret  # type: ignore[union-attr]
    listed = await calls(fresh, "function|list")
    for i in range(1, 30):
        await provision.ensure_agent(fresh, "ns", f"a{i}", f"agent-a{i}", f"pw-a{i}-123")
    assert await calls(fresh, "function|list") == listed  # asked podium_info (a few bytes), not the whole code
    await fresh.execute_command("FUNCTION", "FLUSH")  # Redis restarted without persistence
    assert not await is_current(fresh)
    await provision.ensure_agent(fresh, "ns", "a30", "agent-a30", "pw-a30-123")
    assert await is_current(fresh)
    await provision.ensure_agent(fresh, "ns", "a31", "agent-a31", "pw-a31-123", max_bytes=4096)  # a new limit
    assert await is_current(fresh, max_bytes=4096) and not await is_current(fresh, max_bytes=1 << 20)
    assert (await read_library(fresh)).max_bytes == 4096  # type: ignore[union-attr]
    assert (await read_library(fresh)).secret != secret  # the flush took the secret too: a new one was made


async def test_results_sealed_after_redis_lost_the_library_still_reach_their_waiters(fresh: aioredis.Redis) -> None:
    # A Redis restarted empty: the operator's next apply loads the library anew, with a new secret. A producer that
    # kept the old one must not take every result sealed since for a forgery (its runs would wait out timeouts).
    async with Bus(fresh) as producer, Bus(fresh) as worker_bus:
        worker = worker_bus.consumer("ns", "w", "w-0")

        async def round_trip(task: Task) -> Result | None:
            await producer.dispatch(task)
            [delivery] = await worker.fetch(1, 2000)
            assert await worker.complete(delivery, Result(task.id, 1, True, output=task.input))
            return await producer.wait_result(task, 5)

        before = await round_trip(Task(id="t-before", kind="execute", input="a", namespace="ns", agent="w"))
        assert before is not None and before.output == "a"
        secret = (await read_library(fresh)).secret  # type: ignore[union-attr]
        await fresh.execute_command("FUNCTION", "FLUSH")
        await provision.ensure_agent(fresh, "ns", "w", "agent-w", "pw-w-12345")  # the operator's health round
        assert (await read_library(fresh)).secret != secret  # type: ignore[union-attr]

        after = Task(id="t-after", kind="execute", input="b", namespace="ns", agent="w")
        got = await round_trip(after)  # through the result stream
        assert got is not None and got.output == "b"
        assert (await producer.get_result(after)) == got  # and through the result key
        # A value written by hand is still refused, library read again or not.
        forged = Task(id="t-forged", kind="execute", input="c", namespace="ns", agent="w")
        await fresh.set(result_key(forged), b"0" * 40 + Result(forged.id, 1, True, output="forged").to_json())
        assert await producer.get_result(forged) is None
