"""Upgrading from one tag for both kinds: an Agent and an Orchestration named alike are pulled apart, in flight
work included, and results come out sealed."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.keys import GROUP, AgentKeys, OrchestrationKeys
from podium.dataplane.messages import Result, Task
from podium.dataplane.migrate import LAYOUT_KEY, migrate, new_name


def test_legacy_names_map_by_suffix_and_result_keys_by_ttl() -> None:
    assert new_name("podium:{ns/x}:inbox", False) == AgentKeys("ns", "x").inbox
    assert new_name("podium:{ns/x}:done:u:s:1:2", True) == AgentKeys("ns", "x").prefix + "done:u:s:1:2"
    assert new_name("podium:{ns/x}:journal:u", False) == OrchestrationKeys("ns", "x").journal("u")
    assert new_name("podium:{ns/x}:state:ver", False) == OrchestrationKeys("ns", "x").state + ":ver"
    assert new_name("podium:{ns/x}:result:t", True) == AgentKeys("ns", "x").result("t")  # agents' carry a TTL
    assert new_name("podium:{ns/x}:result:u", False) == OrchestrationKeys("ns", "x").result("u")
    assert new_name(AgentKeys("ns", "x").inbox, False) is None  # already per kind
    assert new_name("podium:{ns/x}:mystery", False) is None


async def test_an_agent_and_an_orchestration_of_one_name_are_pulled_apart(client: aioredis.Redis, ns: str) -> None:
    legacy = f"podium:{{{ns}/x}}:"
    await client.delete(LAYOUT_KEY)
    task = Task(id="u1:s1:1", kind="execute", input=1, namespace=ns, agent="x")
    done = Result(task_id="done-1", attempt=1, ok=True, output="old")
    # The agent: a pending task, a recorded result (stream, key, marker), heartbeats.
    await client.xgroup_create(legacy + "inbox", GROUP, id="0", mkstream=True)
    await client.xadd(legacy + "inbox", {"t": task.to_json()})
    await client.xreadgroup(GROUP, "old-pod", {legacy + "inbox": ">"})
    await client.xadd(legacy + "results", {"i": "done-1", "r": done.to_json()})
    await client.set(legacy + "result:done-1", done.to_json(), ex=3600)
    await client.set(legacy + "done:done-1:1", "1", ex=3600)
    await client.hset(legacy + "stats", "completed", 1)
    # The orchestration of the same name: journal, events, stored result (no TTL).
    await client.hset(legacy + "journal:u1", "s1", json.dumps({"step": "s1"}))
    await client.xadd(legacy + "events", {"type": "note"})
    await client.set(legacy + "result:u1", '{"final": 1}')

    async with Bus(client, max_deliveries=3) as bus:
        report = await migrate(client, await bus.library())
        assert report is not None and report.moved == 7 and report.sealed == 1 and report.kept == []
        assert report.dropped == 1  # the marker: the sealed result key dedupes now
        assert [k async for k in client.scan_iter(match=legacy.replace("{", "\\{") + "*")] == []
        agent, run = AgentKeys(ns, "x"), OrchestrationKeys(ns, "x")
        assert await client.get(run.result("u1")) == b'{"final": 1}'
        assert await client.hget(run.journal("u1"), "s1") is not None and await client.xlen(run.events) == 1
        assert await client.hget(agent.stats, "completed") == b"1"
        # The recorded result verifies; the history keeps it.
        stored = await bus.get_result(Task(id="done-1", kind="execute", input=0, namespace=ns, agent="x"))
        assert stored is not None and stored.output == "old"
        assert [e.payload["output"] for e in await bus.history(agent=(ns, "x"))] == ["old"]
        # The task in flight moved with its pending entry: a replica finishes it.
        consumer = bus.consumer(ns, "x", "new-pod", lease_seconds=0.2)
        await asyncio.sleep(0.3)
        [delivery] = await consumer.fetch(1, 0)  # old-pod never heartbeats here: its entry is taken over
        assert delivery.task.id == task.id and delivery.deliveries == 2
        assert await consumer.complete(delivery, Result(task_id=task.id, attempt=1, ok=True, output="new"))
        assert (await bus.get_result(task)).output == "new"  # type: ignore[union-attr]
        assert await migrate(client, await bus.library()) is None  # once
