"""Podium under Redis Sentinel (1 primary, 1 replica, 3 Sentinels on 127.0.0.1 ports): the primary is killed with
SIGKILL mid-run, the Sentinels promote the replica, the agents follow. Every result an agent acknowledged survives
(a completion counts once a replica holds it: ``wait_replicas=1``, the Sentinel default), and the run loses nothing."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from podium.dataplane import provision
from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.consumer import NotDurable
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import Result, Task
from tests.support.agent_processes import AgentFleet
from tests.support.redis_topologies import SentinelSet
from tests.support.reliability import outcome, work_tasks

TASKS = 200


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    with SentinelSet() as running:
        yield running


async def test_a_completion_counts_only_once_a_replica_holds_it(sentinels: SentinelSet) -> None:
    ns = "s" + uuid.uuid4().hex[:8]
    client = connect(sentinels.url)
    replica = sentinels.replica if sentinels.primary_port() == sentinels.primary.port else sentinels.primary
    assert replica.process is not None
    try:
        async with Bus(client, wait_replicas=1) as bus:
            task = Task(id="t1", kind="execute", input=1, namespace=ns, agent="worker")
            await bus.dispatch(task)
            consumer = bus.consumer(ns, "worker", "worker-0")
            [delivery] = await consumer.fetch(1, 1000)
            replica.process.send_signal(signal.SIGSTOP)  # the replica stops taking the primary's writes
            try:
                with pytest.raises(NotDurable, match="only 0 of 1 replicas"):
                    await consumer.complete(delivery, Result("t1", 1, True, output="kept"))
            finally:
                replica.process.send_signal(signal.SIGCONT)
            # Completing again is safe: recorded once already, and now a replica confirms it.
            assert await consumer.complete(delivery, Result("t1", 1, True, output="kept")) is False
        with redis.Redis(port=replica.port) as direct:
            assert direct.exists(AgentKeys(ns, "worker").result("t1")) == 1
    finally:
        await client.aclose()


async def test_a_failover_mid_run_keeps_every_acknowledged_result(sentinels: SentinelSet, tmp_path: Path) -> None:
    ns = "s" + uuid.uuid4().hex[:8]
    client = connect(sentinels.url)
    await provision.ensure_agent(client, ns, "worker", f"agent-{ns}", "pw-worker-123")  # on the replica too
    fleet = AgentFleet(
        sentinels.url,
        ns,
        "worker",
        tmp_path,
        env={"PODIUM_REDIS_USERNAME": f"agent-{ns}", "PODIUM_REDIS_PASSWORD": "pw-worker-123"},
    )
    tasks: list[Task] = work_tasks(ns, "worker", TASKS, 100)
    try:
        for name in ("worker-0", "worker-1"):
            fleet.start(name, wait=False)
        for name in ("worker-0", "worker-1"):
            await asyncio.to_thread(fleet.wait_ready, name)
        async with Bus(client) as bus:
            await bus.dispatch_many(tasks)
        results = AgentKeys(ns, "worker").results
        for _ in range(400):  # bounded: at most 20 s
            if await client.xlen(results) >= TASKS // 5:
                break
            await asyncio.sleep(0.05)
        acknowledged = fleet.stored()  # results the agents counted as stored before the primary dies
        await asyncio.to_thread(sentinels.kill_primary_and_wait_for_failover)
        run = await outcome(sentinels.url, fleet, tasks, timeout=120)
    finally:
        fleet.stop_all()
        await client.aclose()
    assert len(acknowledged) >= TASKS // 5 and len(acknowledged) < TASKS, "the failover did not come mid-run"
    lost = [t for t in acknowledged if t not in run.results]
    assert lost == [], f"{len(lost)} acknowledged results lost in the failover"
    run.notes.update(fault="sentinel failover (primary SIGKILLed)", acknowledged_before=len(acknowledged))
    run.check()


def test_podium_run_reads_a_runs_state_through_the_sentinels(sentinels: SentinelSet) -> None:
    """`podium run state` (and every `podium run` command that reads Redis) takes the Sentinel URL the operator
    takes, and finds the primary through it."""
    from podium.cli.redis_access import with_redis
    from podium.dataplane.state import SharedState

    async def write_then_list(client: Any) -> Any:
        state = SharedState(client, "cli", "run")
        await state.set("fact", "the moon orbits the Earth", writer="fact-writer")
        return await state.listing()

    assert with_redis(sentinels.url, write_then_list) == [("fact", "the moon orbits the Earth", 1, "fact-writer")]
