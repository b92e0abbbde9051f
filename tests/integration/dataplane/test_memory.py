"""An agent's memory in real Redis, through the agent's own ACL user: its turns and named memories are its own,
capped in bytes, expiring; another agent's memory and a run's state are out of its reach."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from podium.dataplane.bus import Bus
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.memory import AgentMemory, Turn


def turn(run: str, n: int, size: int = 40) -> Turn:
    return Turn(run=run, step=f"s{n}", kind="execute", input=f"question {n} " + "q" * size, output=f'"answer {n}"')


async def test_the_agents_user_keeps_turns_and_a_named_memory_of_its_own(
    worker_bus: Bus, client: aioredis.Redis, ns: str
) -> None:
    mine = AgentMemory(worker_bus.redis, ns, "worker")
    for n in range(3):
        await mine.add_run_turn(turn("run-a", n))
    assert [t.step for t in await mine.run_turns("run-a")] == ["s2", "s1", "s0"]  # newest first
    assert await mine.run_turns("run-b") == []
    assert 0 < await client.pttl(AgentKeys(ns, "worker").turns("run-a")) <= 86_400_000

    await mine.remember("notes", turn("run-a", 0), ttl_seconds=60, max_bytes=1000)
    assert [t.step for t in await mine.recall("notes")] == ["s0"]
    assert 0 < await client.pttl(AgentKeys(ns, "worker").memory("notes")) <= 60_000

    with pytest.raises(NoPermissionError):
        await AgentMemory(worker_bus.redis, ns, "other").recall("notes")
    with pytest.raises(NoPermissionError):
        await AgentMemory(worker_bus.redis, ns, "other").add_run_turn(turn("run-a", 9))
    with pytest.raises(NoPermissionError):
        await worker_bus.redis.xrevrange(OrchestrationKeys(ns, "worker").state + ":x")


async def test_a_named_memory_drops_its_oldest_entries_beyond_its_cap(client: aioredis.Redis, ns: str) -> None:
    memory = AgentMemory(client, ns, "keeper")
    for n in range(10):
        await memory.remember("notes", turn(f"run-{n}", n), ttl_seconds=60, max_bytes=600)
        assert await memory.size("notes") <= 600
    kept = await memory.recall("notes")
    assert kept[0].run == "run-9" and len(kept) < 10
    assert [t.run for t in kept] == [f"run-{n}" for n in range(9, 9 - len(kept), -1)]  # a newest run, unbroken

    # An entry larger than the cap alone is shortened to fit, not dropped: the latest turn is always kept.
    await memory.remember("notes", turn("run-big", 0, size=5000), ttl_seconds=60, max_bytes=600)
    (big,) = await memory.recall("notes")
    assert big.run == "run-big" and big.input.endswith("...") and big.size <= 600
