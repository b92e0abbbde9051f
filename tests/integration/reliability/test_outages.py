"""Redis faults in the middle of a run of real `podium agent` replicas: stopped for 3 s and for 20 s (longer than
the 1 s lease), and held at ``maxmemory`` for 15 s. Every time: 0 lost, 0 recorded twice, re-executions counted
(the figures go to docs/data-plane.md; `pytest -s` prints them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.keys import AgentKeys
from podium_localcluster.redis_server import RedisServer
from tests.support.agent_processes import AgentFleet
from tests.support.reliability import Outcome, outcome, work_tasks

TASKS, WORK_MS, REPLICAS = 200, 150, 3


@pytest.fixture
async def fleet(fresh_redis: RedisServer, ns: str, tmp_path: Path) -> AsyncIterator[AgentFleet]:
    group = AgentFleet(fresh_redis.url, ns, "worker", tmp_path, concurrency=4, lease_seconds=1.0)
    try:
        for i in range(REPLICAS):
            group.start(f"worker-{i}", wait=False)
        for i in range(REPLICAS):
            await asyncio.to_thread(group.wait_ready, f"worker-{i}")
        yield group
    finally:
        group.stop_all()


async def run_through(redis: RedisServer, fleet: AgentFleet, fault: Callable[[], Awaitable[None]]) -> Outcome:
    """Dispatch the run, let a tenth of it finish, apply ``fault``, then collect everything."""
    tasks = work_tasks(fleet.namespace, fleet.agent, TASKS, WORK_MS)
    client = aioredis.Redis.from_url(redis.url)
    try:
        async with Bus(client) as bus:
            await bus.dispatch_many(tasks)
            results = AgentKeys(fleet.namespace, fleet.agent).results
            for _ in range(400):  # bounded: at most 20 s
                if await client.xlen(results) >= TASKS // 10:
                    break
                await asyncio.sleep(0.05)
            assert await client.xlen(results) < TASKS, "the run ended before the fault"
    finally:
        await client.aclose()
    await fault()
    return await outcome(redis.url, fleet, tasks, timeout=120)


def stopped_for(redis: RedisServer, seconds: float) -> Callable[[], Awaitable[None]]:
    async def fault() -> None:
        await asyncio.to_thread(redis.stop)  # SIGTERM: Redis writes its AOF out and exits
        await asyncio.sleep(seconds)
        await asyncio.to_thread(redis.start)

    return fault


@pytest.mark.parametrize("seconds", [3, 20])
async def test_redis_stopped_mid_run_loses_nothing(fresh_redis: RedisServer, fleet: AgentFleet, seconds: int) -> None:
    result = await run_through(fresh_redis, fleet, stopped_for(fresh_redis, seconds))
    result.notes["fault"] = f"redis stopped {seconds} s"
    result.check()


async def test_redis_at_maxmemory_for_15s_loses_nothing_and_runs_nothing_twice(
    fresh_redis: RedisServer, fleet: AgentFleet
) -> None:
    admin = aioredis.Redis.from_url(fresh_redis.url)

    async def fault() -> None:
        used = int((await admin.info("memory"))["used_memory"])
        # Well under what Redis uses (buffers freed meanwhile do not end the pressure). With noeviction every write
        # that needs memory is refused, and every function not flagged allow-oom or no-writes.
        await admin.config_set("maxmemory", used // 2)
        await asyncio.sleep(15)
        await admin.config_set("maxmemory", 0)

    try:
        result = await run_through(fresh_redis, fleet, fault)
    finally:
        await admin.aclose()
    refused = sum(1 for r in fleet.records() if "could not store" in r.get("msg", "") and "maxmemory" in r["msg"])
    result.notes.update(fault="maxmemory 15 s", stores_refused=refused)
    result.check()
    assert refused > 0, "Redis never refused a result: the fault did not bite"
    # Heartbeats go through at maxmemory and taking over work does not: no live replica lost a task to another.
    assert result.re_executions == 0
