"""kill -9 at random points of a run: three `podium agent` replicas take batches of tasks while, trial after trial,
one of them (chosen at random, at a random moment: mid-task, mid-fetch, mid-completion, or still starting) is
killed with SIGKILL and restarted under the same name, as Kubernetes restarts a container. After all trials: 0 lost,
0 recorded twice, nothing left or dead-lettered; re-executions counted.

CI runs a few trials; ``PODIUM_KILL_TRIALS=50 pytest -s tests/integration/reliability/test_kill9.py`` is the full
run whose figures docs/data-plane.md records (``PODIUM_KILL_SEED`` picks another random sequence).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.messages import Task
from tests.support.agent_processes import AgentFleet
from tests.support.reliability import outcome

TRIALS = int(os.environ.get("PODIUM_KILL_TRIALS", "4"))
SEED = int(os.environ.get("PODIUM_KILL_SEED", "7"))
REPLICAS = [f"worker-{i}" for i in range(3)]


async def test_kill_9_at_random_points_loses_nothing_and_records_nothing_twice(
    redis_url: str, ns: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    fleet = AgentFleet(redis_url, ns, "worker", tmp_path, concurrency=4, lease_seconds=1.0)
    client = aioredis.Redis.from_url(redis_url)
    tasks: list[Task] = []
    try:
        for name in REPLICAS:
            fleet.start(name, wait=False)
        for name in REPLICAS:
            await asyncio.to_thread(fleet.wait_ready, name)
        async with Bus(client) as bus:
            stop = asyncio.Event()

            async def produce() -> None:
                """A steady stream of work, so that a kill mostly finds tasks in flight."""
                n = 0
                while not stop.is_set():
                    task = Task(
                        id=f"k{n}",
                        kind="execute",
                        input={"n": n, "ms": rng.randint(50, 400)},
                        namespace=ns,
                        agent="worker",
                    )
                    await bus.dispatch(task)
                    tasks.append(task)
                    n += 1
                    await asyncio.sleep(0.04)

            producer = asyncio.create_task(produce())
            try:
                for _trial in range(TRIALS):
                    await asyncio.sleep(rng.uniform(0.3, 1.5))  # a random point of the run
                    victim = rng.choice(REPLICAS)
                    await asyncio.to_thread(fleet.kill, victim)
                    fleet.restart(victim)  # same name; not waited for: the next kill may find it still starting
            finally:
                stop.set()
                await producer
        result = await outcome(redis_url, fleet, tasks, timeout=180)
    finally:
        fleet.stop_all()
        await client.aclose()
    result.notes.update(kills=TRIALS, seed=SEED, incarnations=len(fleet.logs))
    result.check()
