"""Cancelling an orchestration on the real bus: its queued tasks never run, other work is untouched."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import NoPermissionError

from podium.dataplane import cancellation
from podium.dataplane.bus import Bus
from podium.dataplane.consumer import InboxConsumer
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import Result, Task


def task(ns: str, orch: str, i: int, uid: str = "u1", agent: str = "worker") -> Task:
    return Task(
        id=f"{orch}-{i}",
        kind="execute",
        input={"n": i},
        namespace=ns,
        agent=agent,
        orchestration=f"{ns}/{orch}",
        meta={"step": f"s{i}", "uid": uid},
    )


async def drain(consumer: InboxConsumer, bus: Bus, ns: str, deadline: float = 10.0) -> list[str]:
    """Run the consumer like an agent until the inbox is empty; the ids of the tasks it executed."""
    ran: list[str] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while await bus.queue_depth(ns, consumer.agent) and loop.time() < end:
        for d in await consumer.fetch(8, 100):
            ran.append(d.task.id)
            await consumer.complete(d, Result(task_id=d.task.id, attempt=d.task.attempt, ok=True, replica="r"))
    return ran


async def test_cancel_removes_queued_tasks_of_one_orchestration_and_keeps_the_others(bus: Bus, ns: str) -> None:
    a = [task(ns, "a", i) for i in range(50)]
    b = [task(ns, "b", i) for i in range(5)]
    await bus.dispatch_many([t for pair in zip(a[:5], b, strict=True) for t in pair] + a[5:])  # interleaved

    removed = await bus.cancel(f"{ns}/a", ["worker"], uid="u1")

    assert removed == {"worker": 50}
    ran = await drain(bus.consumer(ns, "worker", "r1"), bus, ns)
    assert sorted(ran) == sorted(t.id for t in b)
    assert await bus.queue_depth(ns, "worker") == 0 and await bus.in_flight(ns, "worker") == 0
    assert [await bus.get_result(t) for t in a] == [None] * 50  # never delivered: nobody recorded anything


async def test_delivered_tasks_of_a_cancelled_run_are_settled_not_run(bus: Bus, ns: str) -> None:
    a = [task(ns, "a", i) for i in range(20)]
    b = [task(ns, "b", i) for i in range(5)]
    await bus.dispatch_many(a + b)
    dead = bus.consumer(ns, "worker", "dead", lease_seconds=0.2)
    held = await dead.fetch(12, 100)  # a replica took 12 of A's tasks, then died holding them
    assert len(held) == 12

    removed = await bus.cancel(f"{ns}/a", ["worker"], uid="u1")
    assert removed == {"worker": 8}  # only the undelivered ones can be deleted
    await asyncio.sleep(0.3)  # the dead replica's lease lapses

    ran = await drain(bus.consumer(ns, "worker", "r2", lease_seconds=0.2), bus, ns)

    assert sorted(ran) == sorted(t.id for t in b)
    assert await bus.queue_depth(ns, "worker") == 0 and await bus.in_flight(ns, "worker") == 0
    for t in a[:12]:
        got = await bus.get_result(t)
        assert got is not None and not got.ok
        assert got.error == f"cancelled: orchestration {ns}/a was deleted or its run ended"
    # The dead replica comes back under its name: what it held was settled, it gets nothing to run.
    assert await bus.consumer(ns, "worker", "dead").fetch(10, 0) == []


async def test_a_uid_scoped_cancel_spares_a_recreated_run_of_the_same_name(bus: Bus, ns: str) -> None:
    old = [task(ns, "a", i, uid="old") for i in range(10)]
    new = [task(ns, "a", 100 + i, uid="new") for i in range(4)]
    await bus.dispatch_many(old + new)
    consumer = bus.consumer(ns, "worker", "r1")
    first = await consumer.fetch(3, 100)  # handed to the agent's code before the cancel: they finish
    await bus.cancel(f"{ns}/a", ["worker"], uid="old")
    for d in first:
        await consumer.complete(d, Result(task_id=d.task.id, attempt=1, ok=True))
    ran = [d.task.id for d in first] + await drain(consumer, bus, ns)
    assert sorted(ran) == sorted([t.id for t in old[:3]] + [t.id for t in new])
    assert await bus.queue_depth(ns, "worker") == 0


async def test_cancel_without_uid_covers_every_run_and_long_inboxes_in_batches(
    bus: Bus, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cancellation, "SCAN_BATCH", 7)  # many script calls, each resuming at its cursor
    tasks = [task(ns, "a", i, uid=f"u{i % 3}") for i in range(40)] + [task(ns, "b", i) for i in range(3)]
    await bus.dispatch_many(tasks)
    await bus.dispatch_many([task(ns, "a", 0, agent="other")])

    removed = await bus.cancel(f"{ns}/a", ["worker", "other", "worker"])

    assert removed == {"other": 1, "worker": 40}
    assert await bus.queue_depth(ns, "worker") == 3 and await bus.queue_depth(ns, "other") == 0
    ttl = await bus.redis.ttl(AgentKeys(ns, "worker").cancelled)
    assert 0 < ttl <= bus.result_ttl_seconds


async def test_cancel_rejects_a_bad_reference(bus: Bus) -> None:
    with pytest.raises(ValueError, match="<namespace>/<name>"):
        await bus.cancel("no-namespace", ["worker"])


async def test_an_agent_acl_user_reads_the_cancelled_set_but_cannot_write_it(
    bus: Bus, worker_bus: Bus, ns: str
) -> None:
    agent_bus = worker_bus
    restricted = agent_bus.redis
    await bus.dispatch_many([task(ns, "a", 1), task(ns, "b", 1)])
    consumer = agent_bus.consumer(ns, "worker", "r1")
    [first] = await consumer.fetch(1, 100)
    await bus.cancel(f"{ns}/a", ["worker"])  # the operator, with its own rights
    ran = [first.task.id] if first.task.orchestration == f"{ns}/b" else []
    await consumer.complete(first, Result(task_id=first.task.id, attempt=1, ok=True))
    ran += await drain(consumer, bus, ns)  # the backlog is read with the operator's rights
    assert ran == ["b-1"]
    with pytest.raises(NoPermissionError):
        await restricted.srem(AgentKeys(ns, "worker").cancelled, f"{ns}/a")
    with pytest.raises(NoPermissionError):
        await restricted.smembers(AgentKeys(ns, "other").cancelled)


async def test_withdrawing_one_queued_task_deletes_only_its_entry(bus: Bus, ns: str) -> None:
    tasks = [task(ns, "a", i) for i in range(1200)]  # the one withdrawn sits past one scan batch (1,000 entries)
    await bus.dispatch_many(tasks)

    assert await bus.withdraw(tasks[1100]) is True
    assert await bus.withdraw(tasks[1100]) is False  # gone: nothing to delete a second time

    ran = await drain(bus.consumer(ns, "worker", "r1"), bus, ns)
    assert sorted(ran) == sorted(t.id for i, t in enumerate(tasks) if i != 1100)
    assert await bus.get_result(tasks[1100]) is None  # never delivered: nobody recorded anything


async def test_a_withdrawn_task_already_delivered_is_settled_as_withdrawn_not_run(bus: Bus, ns: str) -> None:
    tasks = [task(ns, "a", i) for i in range(6)]
    await bus.dispatch_many(tasks)
    dead = bus.consumer(ns, "worker", "dead", lease_seconds=0.2)
    assert len(await dead.fetch(3, 100)) == 3  # a replica took three, then died holding them

    assert await bus.withdraw(tasks[1]) is False  # delivered: it cannot be deleted, it is marked instead
    await asyncio.sleep(0.3)  # the dead replica's lease lapses
    ran = await drain(bus.consumer(ns, "worker", "r2", lease_seconds=0.2), bus, ns)

    assert sorted(ran) == sorted(t.id for i, t in enumerate(tasks) if i != 1)
    got = await bus.get_result(tasks[1])
    assert got is not None and not got.ok
    assert got.error == f"withdrawn: orchestration {ns}/a stopped waiting for this attempt (task {tasks[1].id})"
    assert await bus.queue_depth(ns, "worker") == 0 and await bus.in_flight(ns, "worker") == 0


async def test_a_task_a_replica_handed_back_counts_as_queued_and_is_withdrawn_before_it_runs(bus: Bus, ns: str) -> None:
    # A replica whose model server goes down hands back what a read already under way gave it: no replica holds
    # that task, so a run deciding whether its agent will ever take it must see it as waiting in the queue.
    tasks = [task(ns, "a", i) for i in range(3)]
    await bus.dispatch_many(tasks)
    replica = bus.consumer(ns, "worker", "r1")
    held = await replica.fetch(2, 100)
    assert [d.task.id for d in held] == [tasks[0].id, tasks[1].id]
    assert not await bus.queued(tasks[0]) and await bus.queued(tasks[2])  # held by r1; not delivered yet
    await replica.release(held[0])
    assert await bus.queued(tasks[0]) and not await bus.queued(tasks[1])

    assert await bus.withdraw(tasks[0]) is False  # handed out once: marked for whoever takes it next, not deleted
    await replica.complete(held[1], Result(task_id=tasks[1].id, attempt=0, ok=True, replica="r1"))
    ran = await drain(bus.consumer(ns, "worker", "r2"), bus, ns)
    assert ran == [tasks[2].id]
    got = await bus.get_result(tasks[0])
    assert got is not None and not got.ok and got.error is not None and got.error.startswith("withdrawn:")
