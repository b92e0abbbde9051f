"""What a run leaves on its Redis client, on a real redis-server with in-process no-op agents: a run given no bus
closes the one it made (its result reader stops, its connection goes back to the pool); runs that share one bus
(as an operator replica's do) share one result reader, so a small pool carries many runs; and a long-lived bus
stops reading result streams nobody has wanted for a while."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bench.orchestration import echoes, pipeline_spec
from podium.dataplane.bus import Bus
from podium.dataplane.messages import Task
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.runner import run_orchestration

AGENTS = ["a0", "a1"]


@pytest.fixture
async def agents(redis_url: str) -> AsyncIterator[str]:
    """No-op agents a0 and a1 in a namespace of their own, on a client of their own."""
    namespace = "rb" + uuid.uuid4().hex[:8]
    async with echoes(redis_url, AGENTS, namespace):
        yield namespace


def directory() -> AgentDirectory:
    return AgentDirectory([AgentInfo(name=n, role="worker", concurrency=64) for n in AGENTS])


async def blocked_result_reads(admin: aioredis.Redis, name: str) -> int:
    """Connections of the client named ``name`` waiting in an XREAD (a result reader between results)."""
    clients = await admin.client_list()
    return sum(1 for c in clients if c.get("name") == name and c.get("cmd") == "xread" and "b" in c.get("flags", ""))


async def until_no_reader(admin: aioredis.Redis, name: str, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await blocked_result_reads(admin, name) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_run_that_made_its_own_bus_leaves_no_reader_and_no_connection_behind(
    redis_url: str, agents: str
) -> None:
    name = f"engine-{uuid.uuid4().hex[:6]}"
    engine = aioredis.Redis.from_url(redis_url, client_name=name)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        for i in range(3):
            uid = uuid.uuid4().hex[:12]
            outcome = await run_orchestration(engine, directory(), agents, f"own-{i}", uid, pipeline_spec(2))
            assert outcome.phase == "Succeeded", outcome.message
        # A reader left behind would sit in XREAD BLOCK on a connection of the caller's pool, for ever.
        assert await blocked_result_reads(admin, name) == 0
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "podium-result-fanout"]
        assert not engine.connection_pool._in_use_connections  # type: ignore[union-attr]
    finally:
        await engine.aclose()
        await admin.aclose()


async def test_runs_sharing_one_bus_share_one_result_reader_and_fit_a_small_pool(redis_url: str, agents: str) -> None:
    name = f"engine-{uuid.uuid4().hex[:6]}"
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=4, timeout=20, client_name=name)
    engine = aioredis.Redis(connection_pool=pool)
    admin = aioredis.Redis.from_url(redis_url)
    bus = Bus(engine)
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(await blocked_result_reads(admin, name))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        runs = [
            run_orchestration(
                engine, directory(), agents, f"shared-{i}", uuid.uuid4().hex[:12], pipeline_spec(3), bus=bus
            )
            for i in range(30)
        ]
        outcomes = await asyncio.wait_for(asyncio.gather(*runs), 120)
        assert [o.phase for o in outcomes] == ["Succeeded"] * 30, [o.message for o in outcomes]
        assert seen and max(seen) <= 1  # one reader for all thirty runs, never one each
    finally:
        watcher.cancel()
        await bus.close()
        await engine.aclose()
        await admin.aclose()


async def test_a_long_lived_bus_stops_reading_streams_nobody_wants_and_reads_them_again_when_asked(
    redis_url: str, agents: str
) -> None:
    name = f"engine-{uuid.uuid4().hex[:6]}"
    engine = aioredis.Redis.from_url(redis_url, client_name=name)
    admin = aioredis.Redis.from_url(redis_url)
    bus = Bus(engine)
    bus._fanout._idle_seconds = 0.5  # the operator's is minutes; the behaviour is the same

    async def one_task() -> None:
        task = Task(id=uuid.uuid4().hex, kind="execute", input={"n": 1}, namespace=agents, agent="a0")
        await bus.dispatch(task)
        result = await bus.wait_result(task, 10)
        assert result is not None and result.ok

    try:
        await one_task()
        assert await blocked_result_reads(admin, name) == 1
        # Nothing dispatched or waited on since: the reader lets the stream go, and with it its connection.
        assert await until_no_reader(admin, name, 5)
        await one_task()  # asked again: read again, the result is not missed
        assert await blocked_result_reads(admin, name) == 1
    finally:
        await bus.close()
        await engine.aclose()
        await admin.aclose()


async def test_a_wait_for_an_attempt_sent_again_after_its_result_was_recorded_still_gets_that_result(
    redis_url: str, agents: str
) -> None:
    # Around a lease handover two replicas may drive one run for a moment: the one that stops may send an attempt
    # again that the other already saw finish. The completion function keeps the first result and writes no new
    # stream entry, so the run's resumed wait must not count on the stream alone.
    engine = aioredis.Redis.from_url(redis_url)
    bus = Bus(engine)
    task = Task(id=uuid.uuid4().hex, kind="execute", input={"n": 1}, namespace=agents, agent="a0")
    try:
        await bus.dispatch(task)
        first = await bus.wait_result(task, 10)
        assert first is not None and first.ok
        await bus.dispatch(task)  # sent again by a driver that then stopped, never waiting for it
        started = asyncio.get_running_loop().time()
        again = await bus.wait_result(task, 30)  # the run, resumed, waits for the attempt in flight
        assert again is not None and again.output == first.output
        assert asyncio.get_running_loop().time() - started < 10  # not the whole timeout
    finally:
        await bus.close()
        await engine.aclose()
