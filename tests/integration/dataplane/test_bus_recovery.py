"""Failure handling of the bus: dead consumers, killed processes, poison messages, Redis crashes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus, Delivery, InboxConsumer
from podium.dataplane.keys import GROUP, AgentKeys
from podium.dataplane.messages import Result, Task
from podium_localcluster.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[3]
LEASE = 0.3


def tasks_for(ns: str, n: int) -> list[Task]:
    return [Task(id=f"task-{i}", kind="execute", input=i, namespace=ns, agent="worker") for i in range(n)]


def ok(d: Delivery, replica: str) -> Result:
    return Result(task_id=d.task.id, attempt=d.task.attempt, ok=True, output=d.task.input, replica=replica)


async def recorded(client: aioredis.Redis, ns: str) -> Counter[str]:
    """How many times each task id was recorded in the agent's result stream."""
    rows = await client.xrange(AgentKeys(ns, "worker").results)
    return Counter(fields[b"i"].decode() for _id, fields in rows)


async def drain(consumer: InboxConsumer, bus: Bus, tasks: list[Task], within: float) -> dict[str, Result]:
    """Run ``consumer`` until every task has a result; returns the results."""

    async def work() -> None:
        while True:
            batch = await consumer.fetch(50, 50)
            await consumer.complete_many([(d, ok(d, consumer.replica)) for d in batch])

    worker = asyncio.create_task(work())
    try:
        return await bus.wait_results(tasks, within)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def test_tasks_of_a_consumer_that_stops_are_reclaimed_and_completed_once(client: aioredis.Redis, ns: str) -> None:
    async with Bus(client) as bus:
        tasks = tasks_for(ns, 8)
        await bus.dispatch_many(tasks)
        stuck = bus.consumer(ns, "worker", "stuck", lease_seconds=LEASE)
        held = await stuck.fetch(5, 1000)  # ...and never completes nor heartbeats again
        assert len(held) == 5
        survivor = bus.consumer(ns, "worker", "survivor", lease_seconds=LEASE)
        started = time.monotonic()
        results = await drain(survivor, bus, tasks, within=10)
        assert len(results) == 8 and time.monotonic() - started < 3
        assert all(r.replica == "survivor" for r in results.values())
        assert await recorded(client, ns) == Counter({t.id: 1 for t in tasks})
        # The stuck consumer wakes up and completes late: refused as a duplicate, result unchanged.
        assert await stuck.complete(held[0], ok(held[0], "stuck")) is False
        assert (await bus.get_result(held[0].task)).replica == "survivor"  # type: ignore[union-attr]


def start_worker(url: str, ns: str, *, replica: str, delay_ms: float) -> subprocess.Popen[str]:
    """The bench's worker peer: a replica that holds each batch for ``delay_ms`` before completing it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench._peers.podium_worker",
            "--url",
            url,
            "--namespace",
            ns,
            "--agent",
            "worker",
            "--replica",
            replica,
            "--lease",
            str(LEASE),
            "--delay-ms",
            str(delay_ms),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'operator'}"},
    )


async def test_sigkilled_worker_process_tasks_finish_on_the_survivor(
    redis_url: str, client: aioredis.Redis, ns: str
) -> None:
    worker = start_worker(redis_url, ns, replica="doomed", delay_ms=60_000)
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        async with Bus(client) as bus:
            tasks = tasks_for(ns, 20)
            await bus.dispatch_many(tasks)
            line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 10)
            assert line.startswith("fetched")
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            assert await bus.queue_depth(ns, "worker") == 20
            survivor = bus.consumer(ns, "worker", "survivor", lease_seconds=LEASE)
            started = time.monotonic()
            results = await drain(survivor, bus, tasks, within=10)
            elapsed = time.monotonic() - started
            assert len(results) == 20, f"only {len(results)} of 20 finished"
            assert elapsed < 3, f"recovery took {elapsed:.2f}s"
            assert await recorded(client, ns) == Counter({t.id: 1 for t in tasks})
            assert await bus.queue_depth(ns, "worker") == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("seed", range(3))
async def test_random_kill_points_lose_nothing_and_record_nothing_twice(
    client: aioredis.Redis, ns: str, seed: int
) -> None:
    rng = random.Random(seed)
    # Many lives die holding the same task here; that is not a poison message, so do not dead-letter.
    async with Bus(client, max_deliveries=1000) as bus:
        tasks = tasks_for(ns, 40)
        await bus.dispatch_many(tasks)
        alive: list[InboxConsumer] = []
        late: list[tuple[InboxConsumer, Delivery]] = []
        accepted, lives = 0, 0
        deadline = time.monotonic() + 40
        while await bus.queue_depth(ns, "worker") and time.monotonic() < deadline:
            if len(alive) < 3 or rng.random() < 0.05:  # a replica starts
                lives += 1
                alive.append(bus.consumer(ns, "worker", f"life-{lives}", lease_seconds=LEASE))
            consumer = rng.choice(alive)
            for d in await consumer.fetch(rng.randint(1, 8), 20):
                fate = rng.random()
                if fate < 0.6:
                    accepted += await consumer.complete(d, ok(d, consumer.replica))
                elif fate < 0.7:
                    late.append((consumer, d))  # stalls past its lease, completes much later
                else:
                    alive.remove(consumer)  # the replica dies here: everything else it fetched is abandoned
                    break
            if late and rng.random() < 0.3:
                stalled, d = late.pop(rng.randrange(len(late)))
                accepted += await stalled.complete(d, ok(d, stalled.replica))
        for stalled, d in late:
            accepted += await stalled.complete(d, ok(d, stalled.replica))
        assert await bus.queue_depth(ns, "worker") == 0, "tasks left undone"
        assert await recorded(client, ns) == Counter({t.id: 1 for t in tasks})
        assert accepted == len(tasks)
        assert None not in [await bus.get_result(t) for t in tasks]
        assert await bus.dead_letters(ns, "worker") == []
        assert lives > 3  # replicas did die


async def test_poison_message_goes_to_dlq_after_max_deliveries_and_work_continues(
    client: aioredis.Redis, ns: str
) -> None:
    async with Bus(client, max_deliveries=2) as bus:
        poison = Task(id="poison", kind="execute", input="kills every replica", namespace=ns, agent="worker")
        await bus.dispatch(poison)
        for life in range(2):  # each replica that takes it dies
            victim = bus.consumer(ns, "worker", f"victim-{life}", lease_seconds=LEASE)
            await asyncio.sleep(LEASE + 0.1)
            [d] = await victim.fetch(1, 1000)
            assert d.task.id == "poison" and d.deliveries == life + 1
        healthy = bus.consumer(ns, "worker", "healthy", lease_seconds=LEASE)
        await asyncio.sleep(LEASE + 0.1)
        after = Task(id="after", kind="execute", input=1, namespace=ns, agent="worker")
        await bus.dispatch(after)
        got = await healthy.fetch(5, 1000)
        assert [d.task.id for d in got] == ["after"]
        [letter] = await bus.dead_letters(ns, "worker")
        assert letter.deliveries == 2 and "handed out 2 times (max 2)" in letter.reason
        assert Task.from_json(letter.raw).id == "poison"
        await healthy.complete(got[0], ok(got[0], "healthy"))
        assert await bus.queue_depth(ns, "worker") == 0


async def test_acknowledged_results_survive_a_redis_crash_with_aof(fresh_redis: RedisServer) -> None:
    ns = "aof"
    client = aioredis.Redis.from_url(fresh_redis.url)
    try:
        async with Bus(client) as bus:
            tasks = tasks_for(ns, 20)
            await bus.dispatch_many(tasks)
            consumer = bus.consumer(ns, "worker", "r1", lease_seconds=LEASE)
            done = await consumer.fetch(10, 1000)
            assert all(await consumer.complete_many([(d, ok(d, "r1")) for d in done]))
            fresh_redis.restart(kill=True)  # SIGKILL: only what the AOF holds survives
            # redis-py raises once per stale pooled connection after a server restart; start clean.
            await client.connection_pool.disconnect()
            for d in done:
                stored = await bus.get_result(d.task)
                assert stored is not None and stored.output == d.task.input
            assert await bus.queue_depth(ns, "worker") == 10
            rest = await drain(consumer, bus, tasks, within=10)
            assert set(rest) == {t.id for t in tasks}
            assert await consumer.complete(done[0], ok(done[0], "r1")) is False  # dedupe survived too
    finally:
        await client.aclose()


async def test_a_live_replica_takes_back_its_own_entries_whose_reply_was_lost(client: aioredis.Redis, ns: str) -> None:
    async with Bus(client) as bus:
        mine = bus.consumer(ns, "worker", "r1", lease_seconds=LEASE)
        other = bus.consumer(ns, "worker", "r2", lease_seconds=LEASE)
        await mine.join()
        assert await mine.fetch(1, 0) == []  # up and running
        [t] = tasks_for(ns, 1)
        await bus.dispatch(t)
        # Redis delivered the entry to r1, but the reply never reached r1's code (its connection dropped).
        await client.xreadgroup(GROUP, "r1", {AgentKeys(ns, "worker").inbox: ">"})
        assert await mine.fetch(1, 0) == []
        for _ in range(4):  # r1 heartbeats through the lease, as `podium agent` does on its own timer
            await mine.heartbeat(0, 1)
            await asyncio.sleep(LEASE / 3)
        assert await other.fetch(1, 0) == []  # r1 is alive: its entry stays its own
        [d] = await mine.fetch(1, 0)  # idle for a lease and not running here: r1 takes it back
        assert d.task.id == t.id and d.deliveries == 2
        assert await mine.complete(d, ok(d, "r1"))
        assert await recorded(client, ns) == Counter({t.id: 1})
