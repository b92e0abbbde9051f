"""A run's start and end on a real redis-server: the agents' loads are read while the budget is claimed, and the
run's own events go out with its other commands (``RunContext.announce``) yet still open and close its stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from bench.orchestration import echoes, pipeline_spec
from podium.dataplane.bus import Bus
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.runner import run_orchestration
from podium_localcluster.redis_server import RedisServer

AGENTS = ["a0", "a1"]


@pytest.fixture
async def bus(fresh_redis: RedisServer, ns: str) -> AsyncIterator[Bus]:
    """The engine's Bus on a redis-server of the test's own, with echo agents answering on another client."""
    engine = aioredis.Redis.from_url(fresh_redis.url)
    bus = Bus(engine)
    async with echoes(fresh_redis.url, AGENTS, ns):
        yield bus
    await bus.close()
    await engine.aclose()


async def run(bus: Bus, ns: str, stages: int = 3) -> tuple[str, object]:
    directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=4) for n in AGENTS])
    name = f"r-{uuid.uuid4().hex[:8]}"
    return name, await run_orchestration(bus.redis, directory, ns, name, name, pipeline_spec(stages), bus=bus)


async def test_a_run_s_stream_opens_with_run_started_and_closes_with_run_finished(bus: Bus, ns: str) -> None:
    name, outcome = await run(bus, ns)
    assert getattr(outcome, "phase", None) == "Succeeded"
    events = [e.type for e in await bus.history(orchestration=f"{ns}/{name}")]
    assert events[0] == "run.started" and events[-1] == "run.finished", events
    assert events.count("task.finished") == 3 and len(events) == 5, events


async def test_a_run_refused_by_redis_at_its_start_raises_redis_s_own_error(
    bus: Bus, ns: str, fresh_redis: RedisServer
) -> None:
    """The budget's claim refused (Redis at maxmemory) while the loads are read: the caller (the operator's retry
    loop, which says why in a RunError Event) gets Redis's error itself, not a group of errors around it."""
    await run(bus, ns)  # the library loaded, the agents' streams there
    admin = aioredis.Redis.from_url(fresh_redis.url)
    used = int((await admin.info("memory"))["used_memory"])
    await admin.config_set("maxmemory", used // 2)
    try:
        with pytest.raises(OutOfMemoryError):
            await run(bus, ns)
    finally:
        await admin.config_set("maxmemory", 0)
        await admin.aclose()
