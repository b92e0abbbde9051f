"""Bounded retention: a long run keeps streams trimmed and Redis memory flat."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import Result, Task
from podium_localcluster.redis_server import RedisServer

TOTAL, BATCH, MAXLEN = 50_000, 500, 1_000


async def used_memory(client: aioredis.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def test_memory_stays_bounded_over_50k_tasks() -> None:
    with RedisServer() as server:  # own server: the measurement must not see other tests' keys
        client = aioredis.Redis.from_url(server.url)
        bus = Bus(client, stream_maxlen=MAXLEN, result_ttl_seconds=1)
        keys = AgentKeys("mem", "worker")
        consumer = bus.consumer("mem", "worker", "r1")
        samples: list[int] = []
        try:
            for start in range(0, TOTAL, BATCH):
                tasks = [
                    Task(id=f"t{i}", kind="execute", input={"i": i}, namespace="mem", agent="worker")
                    for i in range(start, start + BATCH)
                ]
                await bus.dispatch_many(tasks)
                got = await consumer.fetch(BATCH, 1000)
                await consumer.complete_many(
                    [(d, Result(task_id=d.task.id, attempt=1, ok=True, output=d.task.input)) for d in got]
                )
                await bus.publish("mem/run", "progress", {"done": start}, sender="test")
                await bus.send_direct("mem", "worker", "note", start, sender="test")
                if (start // BATCH) % 20 == 19:
                    await asyncio.sleep(1.1)  # let result/dedupe keys pass their TTL, as wall time would
                    samples.append(await used_memory(client))
            assert await client.xlen(keys.inbox) == 0  # acknowledged tasks are deleted
            for stream in (keys.results, keys.direct, "podium:{mem/run}:events"):
                length = await client.xlen(stream)
                assert length <= MAXLEN + 200, f"{stream} holds {length} entries"
            # After the first window, memory must not keep growing with the number of tasks.
            assert max(samples[1:]) < samples[0] * 1.5 + 2_000_000, f"used_memory grew: {samples}"
            assert await client.dbsize() < 3 * BATCH * 4 + 20, "expired results/dedupe keys are not going away"
        finally:
            await bus.close()
            await client.aclose()
