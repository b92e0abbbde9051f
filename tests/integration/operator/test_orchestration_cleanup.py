"""The delete path against a real redis-server: a deleted run's queued tasks are cancelled, then its keys go."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict

import pytest
import redis.asyncio as aioredis

from podium.dataplane import runs
from podium.dataplane.bus import Bus
from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.messages import Task
from podium.dataplane.purge import purge_agent
from podium.engine.journal import Entry, Journal
from podium.operator.orchestrations import run as orchestration_run


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def task(agent: str, i: int, orch: str = "run", uid: str = "uid-1") -> Task:
    return Task(
        id=f"{orch}-{agent}-{i}",
        kind="execute",
        input=None,
        namespace="nsdel",
        agent=agent,
        orchestration=f"nsdel/{orch}",
        meta={"uid": uid},
    )


async def test_journal_names_every_agent_a_run_dispatched_to(r: aioredis.Redis) -> None:
    journal = Journal(r, "nsj", "run", "uid-1")
    await journal.put(Entry(step="s1", state="done", task_id="t1", agent="a", attempt=1))
    await journal.put(Entry(step="s2", state="dispatched", task_id="t2", agent="c", attempt=2, history=["b", "c"]))
    await r.hset(
        OrchestrationKeys("nsj", "run").journal("uid-0"), "s1", json.dumps(asdict(Entry("s1", "done", "t", "d", 1)))
    )
    await r.hset(
        OrchestrationKeys("nsj", "run-2").journal("uid-1"), "s1", json.dumps(asdict(Entry("s1", "done", "t", "x", 1)))
    )
    assert await runs.journal_agents(r, "nsj", "run") == {"a", "b", "c", "d"}
    assert await runs.journal_agents(r, "nsj", "nothing") == set()


async def test_cleanup_cancels_the_runs_queued_tasks_on_its_agents_and_purges_its_keys(r: aioredis.Redis) -> None:
    bus = Bus(r)
    try:
        await bus.dispatch_many([task("a", i) for i in range(6)] + [task("a", i, orch="keep") for i in range(2)])
        await bus.dispatch_many([task("b", i) for i in range(3)] + [task("c", 0)])
        journal = Journal(r, "nsdel", "run", "uid-1")
        await journal.put(Entry(step="s1", state="dispatched", task_id="t1", agent="a", attempt=1))

        purged, removed = await orchestration_run.cleanup(r, "nsdel", "run", uid="uid-1", agents=["b"])

        assert removed == {"a": 6, "b": 3}  # "c" is neither in the journal nor among the given agents
        assert purged >= 1 and await r.exists(journal.key) == 0
        assert await bus.queue_depth("nsdel", "a") == 2  # the other orchestration's tasks stay
        assert await bus.queue_depth("nsdel", "b") == 0
        again = await orchestration_run.cleanup(r, "nsdel", "run", uid="uid-1", agents=["a", "b"])
        assert again == (0, {"a": 0, "b": 0})
    finally:
        await bus.close()
        for agent in ("a", "b", "c"):
            await purge_agent(bus.redis, "nsdel", agent)
