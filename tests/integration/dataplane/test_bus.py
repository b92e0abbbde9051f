"""The bus against a real redis-server: round trips, sharing, dedupe, DLQ, limits, events, history, ACL."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from podium.dataplane.bus import Bus, QueueFull
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.messages import PayloadTooLarge, Result, Task
from podium.dataplane.purge import purge_agent


def task(ns: str, i: int | str, agent: str = "worker", **kw: object) -> Task:
    return Task(id=f"task-{i}", kind="execute", input={"n": i}, namespace=ns, agent=agent, **kw)  # type: ignore[arg-type]


def ok(t: Task, replica: str = "r1", output: object = None) -> Result:
    return Result(task_id=t.id, attempt=t.attempt, ok=True, output=output, replica=replica, agent=t.agent)


async def test_round_trip_delivers_the_task_and_returns_its_result(bus: Bus, ns: str) -> None:
    t = task(ns, 1, orchestration=f"{ns}/o", timeout_seconds=3.0, meta={"k": "v"})
    await bus.dispatch(t)
    consumer = bus.consumer(ns, "worker", "r1")
    [d] = await consumer.fetch(10, 1000)
    assert d.task == t and d.deliveries == 1
    waiter = asyncio.create_task(bus.wait_result(t, 5))
    assert await consumer.complete(d, ok(t, output={"answer": 42}))
    got = await waiter
    assert got is not None and got.output == {"answer": 42} and got.replica == "r1"
    assert (await bus.get_result(t)) == got
    assert await bus.queue_depth(ns, "worker") == 0


async def test_wait_finds_a_result_stored_before_the_wait_began(bus: Bus, client: aioredis.Redis, ns: str) -> None:
    t = task(ns, 1)
    await bus.dispatch(t)
    consumer = bus.consumer(ns, "worker", "r1")
    [d] = await consumer.fetch(1, 1000)
    await consumer.complete(d, ok(t, output="early"))
    other = Bus(client)  # a producer that did not dispatch it (say, after an operator restart)
    try:
        got = await other.wait_result(t, 2)
        assert got is not None and got.output == "early"
        assert await other.wait_result(task(ns, "never"), 0.2) is None
    finally:
        await other.close()


async def test_wait_results_many_at_once(bus: Bus, ns: str) -> None:
    tasks = [task(ns, i) for i in range(300)]
    await bus.dispatch_many(tasks)
    consumer = bus.consumer(ns, "worker", "r1")

    async def work() -> None:
        left = len(tasks)
        while left:
            batch = await consumer.fetch(64, 200)
            await consumer.complete_many([(d, ok(d.task, output=d.task.input["n"] * 2)) for d in batch])
            left -= len(batch)

    worker = asyncio.create_task(work())
    got = await bus.wait_results(tasks, 10)
    await worker
    assert {k: r.output for k, r in got.items()} == {t.id: t.input["n"] * 2 for t in tasks}


async def test_a_completion_of_more_tasks_than_one_xdel_takes_leaves_the_inbox_empty(bus: Bus, ns: str) -> None:
    # The completion function deletes acknowledged entries 500 at a time: the inbox length is the backlog.
    tasks = [task(ns, i) for i in range(1_203)]
    await bus.dispatch_many(tasks)
    consumer = bus.consumer(ns, "worker", "r1")
    got = await consumer.fetch(len(tasks), 1_000)
    assert len(got) == len(tasks) and await bus.queue_depth(ns, "worker") == len(tasks)
    assert all(await consumer.complete_many([(d, ok(d.task, output=d.task.input["n"])) for d in got]))
    assert await bus.queue_depth(ns, "worker") == 0
    results = await bus.wait_results(tasks, 10)
    assert {k: r.output for k, r in results.items()} == {t.id: t.input["n"] for t in tasks}


async def test_two_consumers_share_the_work_and_each_task_runs_once(bus: Bus, ns: str) -> None:
    tasks = [task(ns, i) for i in range(200)]
    await bus.dispatch_many(tasks)
    seen: dict[str, list[str]] = {"r1": [], "r2": []}

    async def work(replica: str) -> None:
        consumer = bus.consumer(ns, "worker", replica)
        while await bus.queue_depth(ns, "worker"):
            for d in await consumer.fetch(5, 50):
                await asyncio.sleep(0.001)  # a little work so that the other replica gets a turn
                seen[replica].append(d.task.id)
                await consumer.complete(d, ok(d.task, replica))

    await asyncio.gather(work("r1"), work("r2"))
    assert seen["r1"] and seen["r2"]
    assert sorted(seen["r1"] + seen["r2"]) == sorted(t.id for t in tasks)


async def test_duplicate_complete_is_refused_and_first_result_kept(bus: Bus, ns: str) -> None:
    t = task(ns, 1)
    await bus.dispatch(t)
    consumer = bus.consumer(ns, "worker", "r1")
    [d] = await consumer.fetch(1, 1000)
    assert await consumer.complete(d, ok(t, output="first")) is True
    assert await consumer.complete(d, ok(t, output="second")) is False
    stored = await bus.get_result(t)
    assert stored is not None and stored.output == "first"
    history = await bus.history(agent=(ns, "worker"))
    assert [e.payload["output"] for e in history if e.type == "result"] == ["first"]


async def test_an_attempt_sent_twice_is_recorded_once_and_the_next_attempt_again(bus: Bus, ns: str) -> None:
    # Two entries of one task id + attempt: what a producer's resend leaves when the first was not lost after all.
    consumer = bus.consumer(ns, "worker", "r1")
    for attempt, outputs in ((1, ("first", "again")), (2, ("retry", "retry again"))):
        t = task(ns, 1, attempt=attempt)
        await bus.dispatch_many([t, t])
        d1, d2 = await consumer.fetch(2, 1000)
        assert await consumer.complete(d1, ok(t, output=outputs[0])) is True
        assert await consumer.complete(d2, ok(t, output=outputs[1])) is False  # acknowledged, not recorded
        assert await bus.queue_depth(ns, "worker") == 0
        stored = await bus.get_result(t)
        assert stored is not None and (stored.attempt, stored.output) == (attempt, outputs[0])
    history = await bus.history(agent=(ns, "worker"))
    assert [e.payload["output"] for e in history if e.type == "result"] == ["first", "retry"]


async def test_a_new_attempt_is_recorded_after_a_failed_one(bus: Bus, ns: str) -> None:
    consumer = bus.consumer(ns, "worker", "r1")
    first = task(ns, 1)
    await bus.dispatch(first)
    [d] = await consumer.fetch(1, 1000)
    assert await consumer.complete(d, Result(task_id=first.id, attempt=1, ok=False, error="flaky"))
    retry = task(ns, 1, attempt=2)
    await bus.dispatch(retry)
    [d2] = await consumer.fetch(1, 1000)
    assert await consumer.complete(d2, ok(retry, output="fine"))
    got = await bus.get_result(first)
    assert got is not None and got.ok and got.attempt == 2


async def test_payload_limit_refuses_big_input_before_sending(client: aioredis.Redis, ns: str) -> None:
    small = Bus(client, max_payload_bytes=1000)
    try:
        with pytest.raises(PayloadTooLarge, match=r"over the bus limit of 1000 bytes.*max_payload_bytes"):
            await small.dispatch(Task(id="big", kind="execute", input="x" * 2000, namespace=ns, agent="worker"))
        assert await small.queue_depth(ns, "worker") == 0
        with pytest.raises(PayloadTooLarge):
            await small.publish(f"{ns}/o", "note", "y" * 2000, sender="me")
    finally:
        await small.close()


async def test_queue_full_is_a_clear_error(client: aioredis.Redis, ns: str) -> None:
    tiny = Bus(client, max_queue=3)
    try:
        await tiny.dispatch_many([task(ns, i) for i in range(3)])
        with pytest.raises(QueueFull, match="limit 3 queued"):
            await tiny.dispatch(task(ns, 3))
    finally:
        await tiny.close()


async def test_malformed_entries_go_to_the_dlq_and_the_consumer_keeps_going(
    bus: Bus, client: aioredis.Redis, ns: str
) -> None:
    inbox = AgentKeys(ns, "worker").inbox
    await client.xadd(inbox, {"t": b"{not json"})
    await client.xadd(inbox, {"x": b"no task field"})
    await client.xadd(inbox, {"t": task(ns, "misrouted", agent="other").to_json()})
    good = task(ns, "good")
    await bus.dispatch(good)
    consumer = bus.consumer(ns, "worker", "r1")
    got = await consumer.fetch(10, 1000)
    assert [d.task.id for d in got] == ["task-good"]
    letters = await bus.dead_letters(ns, "worker")
    reasons = [dl.reason for dl in letters]
    assert len(letters) == 3
    assert "not valid JSON" in reasons[0] and "no task field 't'" in reasons[1] and f"{ns}/other" in reasons[2]
    assert letters[0].raw == "{not json" and letters[0].deliveries == 1
    await consumer.complete(got[0], ok(good))
    assert await bus.queue_depth(ns, "worker") == 0  # dead-lettered entries are acknowledged, not retried


async def test_release_hands_work_to_another_replica_on_its_next_recovery_pass(bus: Bus, ns: str) -> None:
    await bus.dispatch_many([task(ns, i) for i in range(3)])
    greedy, other = bus.consumer(ns, "worker", "r1"), bus.consumer(ns, "worker", "r2", lease_seconds=0.4)
    taken = await greedy.fetch(3, 1000)
    assert await other.fetch(3, 0) == []
    await greedy.release(taken[2])  # never started: its hand-out is given back
    await asyncio.sleep(other.recover_interval)
    [d] = await other.fetch(3, 0)
    assert d.task.id == taken[2].task.id and d.deliveries == 1
    await greedy.release(d)  # not greedy's any more: nothing happens
    assert await other.complete(d, ok(d.task, "r2"))
    assert await bus.queue_depth(ns, "worker") == 2


async def test_heartbeats_list_live_replicas_and_expire(bus: Bus, ns: str) -> None:
    a = bus.consumer(ns, "worker", "r1", lease_seconds=0.3)
    b = bus.consumer(ns, "worker", "r2", lease_seconds=30)
    await a.heartbeat(0.5, 2)
    await b.heartbeat(0.1, 1)
    live = await bus.replicas(ns, "worker")
    assert [(r.replica, r.load, r.in_flight) for r in live] == [("r1", 0.5, 2), ("r2", 0.1, 1)]
    assert live[0].lease_seconds == pytest.approx(0.3)
    await asyncio.sleep(0.5)
    assert [r.replica for r in await bus.replicas(ns, "worker")] == ["r2"]
    await b.leave()
    assert await bus.replicas(ns, "worker") == []


async def test_events_publish_subscribe_and_history(bus: Bus, ns: str) -> None:
    orch = f"{ns}/review"
    stream = bus.subscribe(orch, types={"proposal"})
    first = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.1)
    await bus.publish(orch, "note", {"x": 1}, sender="planner")
    event_id = await bus.publish(orch, "proposal", {"plan": "a"}, sender="coder")
    event = await asyncio.wait_for(first, 5)
    assert (event.id, event.type, event.sender, event.payload) == (event_id, "proposal", "coder", {"plan": "a"})
    await stream.aclose()  # type: ignore[attr-defined]
    history = await bus.history(orchestration=orch)
    assert [(e.type, e.sender) for e in history] == [("note", "planner"), ("proposal", "coder")]
    assert [e.type for e in await bus.history(orchestration=orch, limit=1)] == ["proposal"]
    replay = bus.subscribe(orch, from_id="0")
    assert (await anext(replay)).type == "note"
    await replay.aclose()  # type: ignore[attr-defined]


async def test_agent_history_holds_direct_messages_and_results_in_order(bus: Bus, ns: str) -> None:
    await bus.send_direct(ns, "worker", "question", {"q": "why?"}, sender="planner")
    t = task(ns, 1)
    await bus.dispatch(t)
    consumer = bus.consumer(ns, "worker", "r1")
    [d] = await consumer.fetch(1, 1000)
    await consumer.complete(d, ok(t, output="because"))
    await bus.send_direct(ns, "worker", "thanks", None, sender="planner")
    history = await bus.history(agent=(ns, "worker"))
    assert [(e.type, e.sender) for e in history] == [
        ("question", "planner"),
        ("result", "worker/r1"),
        ("thanks", "planner"),
    ]
    assert history[1].payload["output"] == "because"
    with pytest.raises(ValueError, match="exactly one"):
        await bus.history()


async def test_purge_agent_deletes_every_key_of_that_agent_only(bus: Bus, client: aioredis.Redis, ns: str) -> None:
    for agent in ("worker", "keep"):
        t = task(ns, 1, agent=agent)
        await bus.dispatch(t)
        consumer = bus.consumer(ns, agent, "r1")
        [d] = await consumer.fetch(1, 1000)
        await consumer.complete(d, ok(t))
        await consumer.heartbeat(0, 0)
    await purge_agent(bus.redis, ns, "worker")
    assert [k async for k in client.scan_iter(match=AgentKeys(ns, "worker").pattern)] == []
    assert len([k async for k in client.scan_iter(match=AgentKeys(ns, "keep").pattern)]) >= 4


async def test_acl_user_from_agent_acl_rules_can_work_but_not_touch_other_agents(
    bus: Bus, worker_bus: Bus, ns: str
) -> None:
    agent_bus = worker_bus
    restricted = agent_bus.redis
    await bus.dispatch_many([task(ns, 1), task(ns, 2)])
    consumer = agent_bus.consumer(ns, "worker", "r1", lease_seconds=0.2)
    await consumer.join()
    got = await consumer.fetch(2, 1000)
    assert await consumer.complete(got[0], ok(got[0].task))
    await consumer.release(got[1])
    await asyncio.sleep(0.3)
    await consumer.reclaim()
    await consumer.leave()
    assert (await bus.get_result(got[0].task)) is not None
    with pytest.raises(NoPermissionError):
        await restricted.xlen(AgentKeys(ns, "other").inbox)
    with pytest.raises(NoPermissionError):
        await restricted.get(OrchestrationKeys(ns, "worker").events)  # an orchestration named like the agent
