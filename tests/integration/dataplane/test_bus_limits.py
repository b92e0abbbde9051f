"""Limits hold when reading, not only when sending; every dead letter tells its producer; only the completion
function writes results that count (forged ones, by an agent's own user, are ignored)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import MAX_DEPTH, PayloadTooDeep, Result, Task


def task(ns: str, task_id: str, data: object = None) -> Task:
    return Task(id=task_id, kind="execute", input=data, namespace=ns, agent="worker")


def raw_task(ns: str, task_id: str, input_json: bytes) -> bytes:
    head = f'{{"id":"{task_id}","kind":"execute","namespace":"{ns}","agent":"worker","input":'.encode()
    return head + input_json + b"}"


async def test_oversized_and_too_deep_entries_are_dead_lettered_with_an_error_result(
    bus: Bus, client: aioredis.Redis, ns: str
) -> None:
    inbox = AgentKeys(ns, "worker").inbox
    limit = (await bus.library()).max_bytes
    # Written around dispatch (as only a privileged client can): a 3 MiB task, and the report's ~980-level poison.
    huge = raw_task(ns, "huge", b'"' + b"x" * (3 * limit) + b'"')
    deep = raw_task(ns, "deep", b"[" * 980 + b"]" * 980)
    await client.xgroup_create(inbox, "workers", id="0", mkstream=True)
    await client.xadd(inbox, {"t": huge, "i": "huge", "a": "1"})
    await client.xadd(inbox, {"t": deep, "i": "deep", "a": "1"})
    good = task(ns, "good", 1)
    await bus.dispatch(good)
    consumer = bus.consumer(ns, "worker", "r1")
    got = await consumer.fetch(10, 1000)  # never raises for what an entry holds
    assert [d.task.id for d in got] == ["good"]
    errors = await bus.wait_results([task(ns, "huge"), task(ns, "deep")], 5)  # their producers learn at once
    assert f"task entry is {len(huge)} bytes, over the bus limit of {limit} bytes" in errors["huge"].error  # type: ignore[operator]
    assert f"limit is {MAX_DEPTH} levels" in errors["deep"].error  # type: ignore[operator]
    assert not errors["huge"].ok and errors["huge"].error.startswith("dead-lettered: ")  # type: ignore[union-attr]
    big, too_deep = await bus.dead_letters(ns, "worker")
    assert big.size == len(huge) and len(big.raw) == 65536  # the dead-letter stream keeps the first 64 KiB
    assert too_deep.size == len(deep) and too_deep.deliveries == 1
    await consumer.complete(got[0], Result("good", 1, True))
    assert await bus.queue_depth(ns, "worker") == 0


async def test_results_too_large_or_too_deep_are_stored_as_errors_saying_why(bus: Bus, ns: str) -> None:
    tasks = [task(ns, "big"), task(ns, "deep"), task(ns, "fine")]
    await bus.dispatch_many(tasks)
    consumer = bus.consumer(ns, "worker", "r1")
    by_id = {d.task.id: d for d in await consumer.fetch(3, 1000)}
    deep: object = 1
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    outputs = {"big": "x" * (2 << 20), "deep": deep, "fine": "ok"}
    assert all(
        await consumer.complete_many([(by_id[i], Result(i, 1, True, output=o, tokens=7)) for i, o in outputs.items()])
    )
    results = await bus.wait_results(tasks, 5)
    assert results["fine"].ok and results["fine"].output == "ok"
    assert not results["big"].ok and "over the bus limit of" in results["big"].error  # type: ignore[operator]
    assert not results["deep"].ok and "nests" in results["deep"].error  # type: ignore[operator]
    assert results["big"].tokens == 7  # the work was done: its cost still counts


async def test_too_deep_input_is_refused_before_it_is_sent(bus: Bus, ns: str) -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH):
        deep = {"k": deep}
    with pytest.raises(PayloadTooDeep, match=f"over the bus limit of {MAX_DEPTH}"):
        await bus.dispatch(task(ns, "deep", deep))
    assert await bus.queue_depth(ns, "worker") == 0


async def test_only_the_completion_function_writes_results_that_count(bus: Bus, worker_bus: Bus, ns: str) -> None:
    agent = worker_bus.redis  # the agent's own user: it may write these keys, but not with a valid seal
    keys = AgentKeys(ns, "worker")
    t = task(ns, "t1", 1)
    await agent.set(keys.result("t1"), Result("t1", 1, True, output="forged").to_json())
    await agent.xadd(keys.results, {"i": "t1", "r": Result("t1", 1, True, output="forged").to_json(), "s": "0" * 40})
    assert await bus.get_result(t) is None
    await bus.dispatch(t)
    assert await bus.wait_result(t, 0.3) is None  # the forged stream entry is not taken either
    consumer = worker_bus.consumer(ns, "worker", "r1")
    [delivery] = await consumer.fetch(1, 1000)
    assert await consumer.complete(delivery, Result("t1", 1, True, output="real"))  # the forged key did not stop it
    assert (await bus.get_result(t)).output == "real"  # type: ignore[union-attr]
    waited = await asyncio.wait_for(bus.wait_result(t, 5), 10)
    assert waited is not None and waited.output == "real"
    history = [e.payload["output"] for e in await bus.history(agent=(ns, "worker")) if e.type == "result"]
    assert history == ["real"]


async def test_a_replica_of_the_version_before_still_completes_what_it_holds(
    bus: Bus, worker_bus: Bus, ns: str
) -> None:
    # Until 2026-12 a replica passed a dedupe marker key after each result key. During a rolling upgrade the new
    # library and the Agent's new ACL still take that call, so the old pods' tasks are recorded, not run again.
    keys = AgentKeys(ns, "worker")
    t = task(ns, "t1", 1)
    await bus.dispatch(t)
    consumer = worker_bus.consumer(ns, "worker", "old-pod")
    [d] = await consumer.fetch(1, 1000)
    result = Result("t1", 1, True, output="from the old pod").to_json()
    old_keys = [keys.inbox, keys.results, keys.result("t1"), keys.prefix + "done:t1:1"]
    args = [bus.result_ttl_seconds, bus.stream_maxlen, d.entry_id, "t1", 1, result]
    assert [int(c) for c in await worker_bus.call("podium_complete", old_keys, args)] == [1]
    assert (await bus.get_result(t)).output == "from the old pod"  # type: ignore[union-attr]
    assert await bus.queue_depth(ns, "worker") == 0
