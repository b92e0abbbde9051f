"""Engine overhead: how fast RunContext pushes tasks through the real bus to trivial agents.

Starts its own redis-server on loopback, runs in-process echo consumers on the real bus (so agent work is ~0
and what is measured is the engine: journal, budget, breaker, stats, selection, dispatch, result), then runs
centralCommand with N independent tasks and a pipeline of M stages. Bounded: at most 64 tasks per run (the API cap).

    .venv/bin/python -m bench.orchestration --tasks 64 --agents 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import redis.asyncio as aioredis

from podium.api.orchestration import OrchestrationSpec
from podium.engine.bus import Bus
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.messages import Result
from podium.engine.runner import run_orchestration
from podium.localcluster.redis_server import RedisServer

NAMESPACE = "bench"


async def echo(bus: Bus, agent: str, stop: asyncio.Event) -> None:
    consumer = bus.consumer(NAMESPACE, agent, f"{agent}-0")
    while not stop.is_set():
        for d in await consumer.fetch(16, 100):
            result = Result(d.task.id, d.task.attempt, True, output={"by": agent}, agent=agent, replica="0")
            await consumer.complete(d, result)


async def main(tasks: int, agents: int, stages: int) -> None:
    with RedisServer() as server:
        redis = aioredis.Redis.from_url(server.url)
        bus = Bus(redis)
        names = [f"a{i}" for i in range(agents)]
        stop = asyncio.Event()
        loops = [asyncio.create_task(echo(bus, n, stop)) for n in names]
        directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=16) for n in names])
        try:
            for label, spec in (
                (
                    f"centralCommand, {tasks} parallel tasks",
                    {
                        "strategy": "centralCommand",
                        "centralCommand": {"tasks": [{"name": f"t{i}"} for i in range(tasks)]},
                    },
                ),
                (
                    f"pipeline, {stages} sequential stages",
                    {
                        "strategy": "pipeline",
                        "pipeline": {"stages": [{"name": f"s{i}", "role": "worker"} for i in range(stages)]},
                    },
                ),
            ):
                parsed = OrchestrationSpec.model_validate(spec)
                uid = uuid.uuid4().hex[:12]
                started = time.perf_counter()
                outcome = await run_orchestration(redis, directory, NAMESPACE, "bench", uid, parsed, bus=bus)
                first = time.perf_counter() - started
                started = time.perf_counter()
                await run_orchestration(redis, directory, NAMESPACE, "bench", uid, parsed, bus=bus)
                replay = time.perf_counter() - started
                n = len(outcome.tasks)
                spans = [(t.finished_at or 0) - (t.started_at or 0) for t in outcome.tasks]
                print(
                    f"{label}: {outcome.phase}, {n} tasks in {first:.2f}s = {n / first:.0f} tasks/s; "
                    f"task p50 {statistics.median(spans) * 1000:.1f} ms; replay from journal {replay:.2f}s"
                )
        finally:
            stop.set()
            await asyncio.gather(*loops)
            await bus.close()
            await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--stages", type=int, default=20)
    args = parser.parse_args()
    if not 1 <= args.tasks <= 64 or not 1 <= args.stages <= 64:
        parser.error("--tasks and --stages must be within 1..64 (the API caps tasks per orchestration)")
    asyncio.run(main(args.tasks, args.agents, args.stages))
