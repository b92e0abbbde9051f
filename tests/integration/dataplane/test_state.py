"""SharedState against a real redis-server: CAS without lost updates, each conflict strategy, history, rollback."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.dataplane.conflicts import ConflictResolution, Resolution
from podium.dataplane.state import Change, SharedState, SnapshotNotFound, UnknownProposal, VersionConflict


def make(client: aioredis.Redis, resolution: ConflictResolution = "merge", **kw: Any) -> SharedState:
    return SharedState(client, "team-ns", f"orch-{uuid.uuid4().hex[:8]}", resolution=resolution, **kw)


async def test_concurrent_cas_writers_lose_no_update(redis_url: str) -> None:
    writers, increments = 8, 25
    orch = f"orch-{uuid.uuid4().hex[:8]}"
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(writers)]
    conflicts = 0

    async def writer(i: int) -> None:
        nonlocal conflicts
        state = SharedState(clients[i], "team-ns", orch)
        for _ in range(increments):
            while True:
                value, version = await state.get("counter")
                try:
                    await state.set("counter", (value or 0) + 1, writer=f"w{i}", expected_version=version)
                    break
                except VersionConflict as e:
                    assert e.key == "counter" and e.expected == version and e.actual > version
                    conflicts += 1

    try:
        await asyncio.wait_for(asyncio.gather(*(writer(i) for i in range(writers))), timeout=60)
        value, version = await SharedState(clients[0], "team-ns", orch).get("counter")
        assert value == writers * increments
        assert version == writers * increments
        assert conflicts > 0, "the writers never raced: the test did not exercise CAS"
        await SharedState(clients[0], "team-ns", orch).delete_all()
    finally:
        for c in clients:
            await c.aclose()


WRITER_PROCESS = """
import asyncio, sys
import redis.asyncio as aioredis
from podium.dataplane.state import SharedState, VersionConflict

async def main(url, orch, name, k):
    r = aioredis.Redis.from_url(url)
    state = SharedState(r, "team-ns", orch)
    for _ in range(k):
        while True:
            value, version = await state.get("counter")
            try:
                await state.set("counter", (value or 0) + 1, writer=name, expected_version=version)
                break
            except VersionConflict:
                pass
    await r.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


async def test_cas_writers_in_separate_processes_lose_no_update(client: aioredis.Redis, redis_url: str) -> None:
    processes, increments = 4, 40
    state = make(client)
    orch = state.k_state.split("/")[-1].split("}")[0]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER_PROCESS, redis_url, orch, f"p{i}", str(increments)
        )
        for i in range(processes)
    ]
    try:
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=120)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    assert codes == [0] * processes
    assert await state.get("counter") == (processes * increments, processes * increments)
    assert {c.writer for c in await state.history("counter", limit=1000)} == {f"p{i}" for i in range(processes)}
    await state.delete_all()


async def test_cas_rejects_a_stale_version_and_leaves_the_value(client: aioredis.Redis) -> None:
    state = make(client)
    assert await state.get("plan") == (None, 0)
    assert await state.set("plan", {"step": 1}, writer="a", expected_version=0) == 1
    with pytest.raises(VersionConflict, match="expected version 0, found 1"):
        await state.set("plan", {"step": 2}, writer="b", expected_version=0)
    assert await state.get("plan") == ({"step": 1}, 1)
    await state.delete_all()


async def race(state: SharedState, first: dict[str, Any], second: dict[str, Any]) -> tuple[int, Resolution]:
    """Two writers start from the same version; the first lands cleanly, the second is stale and gets resolved."""
    base_version = await state.set("doc", first.pop("base"), writer="setup")
    landed = await state.update("doc", base_version=base_version, **first)
    resolved = await state.update("doc", base_version=base_version, **second)
    assert isinstance(landed, int) and isinstance(resolved, Resolution)
    return landed, resolved


async def test_timestamp_latest_write_wins_even_if_it_arrives_first(client: aioredis.Redis) -> None:
    state = make(client, "timestamp")
    now = time.time()
    _, res = await race(
        state,
        {"base": "v0", "value": "alice's", "writer": "alice", "at": now + 2},
        {"value": "bob's", "writer": "bob", "at": now + 1},
    )
    assert res.winner == "alice's" and "alice" in res.reason
    assert (await state.get("doc"))[0] == "alice's"
    audit = await state.audit()
    assert [(a.strategy, a.winner, sorted(c.writer for c in a.candidates)) for a in audit] == [
        ("timestamp", "alice's", ["alice", "bob"])
    ]
    # The later write arriving second replaces the value and is a "resolve" change in the history.
    res2 = await state.update("doc", "carol's", writer="carol", base_version=1, at=now + 3)
    assert isinstance(res2, Resolution) and res2.winner == "carol's"
    last = (await state.history("doc"))[-1]
    assert (last.kind, last.old, last.new, last.writer) == ("resolve", "alice's", "carol's", "carol")
    await state.delete_all()


async def test_priority_higher_priority_wins_over_a_newer_write(client: aioredis.Redis) -> None:
    state = make(client, "priority")
    _, res = await race(
        state,
        {"base": "v0", "value": "lead's", "writer": "lead", "priority": 5},
        {"value": "intern's", "writer": "intern", "priority": 1},
    )
    assert res.winner == "lead's" and (await state.get("doc"))[0] == "lead's"
    res2 = await state.update("doc", "boss's", writer="boss", priority=9, base_version=1)
    assert isinstance(res2, Resolution) and res2.winner == "boss's"
    assert [a.winner for a in await state.audit()] == ["lead's", "boss's"]
    await state.delete_all()


async def test_merge_combines_one_sided_changes_and_reports_true_conflicts(client: aioredis.Redis) -> None:
    state = make(client, "merge")
    now = time.time()
    base = {"plan": "draft", "owner": "nobody", "limits": {"depth": 1, "width": 1}}
    _, res = await race(
        state,
        {
            "base": dict(base),
            "value": {**base, "plan": "final", "limits": {"depth": 2, "width": 1}},
            "writer": "alice",
            "at": now + 1,
        },
        {
            "value": {**base, "owner": "bob", "limits": {"depth": 3, "width": 4}},
            "writer": "bob",
            "at": now + 2,
        },
    )
    expected = {"plan": "final", "owner": "bob", "limits": {"depth": 3, "width": 4}}
    assert res.winner == expected
    assert res.conflicts == ["limits.depth"] and "bob" in res.reason
    assert await state.get("doc") == (expected, 3)
    (audited,) = await state.audit()
    assert audited.winner == expected and audited.conflicts == ["limits.depth"]
    await state.delete_all()


async def test_concurrent_merges_from_one_base_keep_every_field(redis_url: str) -> None:
    writers = 10
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(writers)]
    try:
        orch = f"merge-{uuid.uuid4().hex[:8]}"
        states = [SharedState(c, "team-ns", orch, resolution="merge") for c in clients]
        await states[0].delete_all()
        base_version = await states[0].set("findings", {"summary": "none"}, writer="lead")

        async def contribute(i: int) -> Resolution | int:
            return await states[i].update(
                "findings", {"summary": "none", f"agent{i}": i}, writer=f"agent{i}", base_version=base_version
            )

        results = await asyncio.wait_for(asyncio.gather(*(contribute(i) for i in range(writers))), timeout=60)
        value, _ = await states[0].get("findings")
        assert value == {"summary": "none", **{f"agent{i}": i for i in range(writers)}}
        assert sum(isinstance(r, int) for r in results) == 1  # exactly one lands cleanly, the rest are merged
        assert len(await states[0].audit()) == writers - 1
        await states[0].delete_all()
    finally:
        for c in clients:
            await c.aclose()


async def test_consensus_majority_replaces_value_and_no_majority_keeps_it(client: aioredis.Redis) -> None:
    state = make(client, "consensus")
    voters = ["a", "b", "c"]
    _, pending = await race(
        state,
        {"base": "v0", "value": "plan-A", "writer": "alice"},
        {"value": "plan-B", "writer": "bob", "voters": voters},
    )
    assert pending.winner == "plan-A" and "proposal" in pending.reason
    assert (await state.get("doc"))[0] == "plan-A"  # nothing changes before the vote
    (proposal,) = await state.proposals("doc")
    assert (proposal.writer, proposal.value) == ("bob", "plan-B")
    pid = proposal.id
    await state.vote("doc", pid, voter="a", accept=True)
    await state.vote("doc", pid, voter="b", accept=True)
    await state.vote("doc", pid, voter="c", accept=False)
    res = await state.settle("doc", voters=voters)
    assert res.winner == "plan-B" and (await state.get("doc"))[0] == "plan-B"
    with pytest.raises(UnknownProposal):
        await state.vote("doc", pid, voter="a", accept=True)  # settled proposals are closed

    loser = await state.propose("doc", "plan-C", writer="carol")
    await state.vote("doc", loser, voter="a", accept=True)
    await state.vote("doc", loser, voter="outsider", accept=True)
    res = await state.settle("doc", voters=voters)
    assert res.winner == "plan-B" and "no strict majority" in res.reason
    assert (await state.get("doc"))[0] == "plan-B"
    assert [(a.strategy, a.winner) for a in await state.audit()] == [
        ("consensus", "plan-B"),
        ("consensus", "plan-B"),
    ]
    await state.delete_all()


async def test_history_records_who_old_new_and_when(client: aioredis.Redis) -> None:
    state = make(client)
    t0 = time.time()
    await state.set("goal", "draft", writer="planner")
    await state.set("other", 1, writer="x")
    await state.set("goal", "final", writer="reviewer")
    await state.delete("goal", writer="janitor")
    hist = await state.history("goal")
    assert [(c.kind, c.writer, c.old, c.new, c.version) for c in hist] == [
        ("set", "planner", None, "draft", 1),
        ("set", "reviewer", "draft", "final", 2),
        ("delete", "janitor", "final", None, 3),
    ]
    assert all(t0 - 1 <= c.at <= time.time() + 1 for c in hist)
    assert len(await state.history()) == 4
    assert [(c.key, c.writer) for c in await state.history(limit=2)] == [("goal", "reviewer"), ("goal", "janitor")]
    await state.delete_all()


async def test_rollback_restores_snapshot_and_notifies_subscribers(client: aioredis.Redis) -> None:
    state = make(client)
    await state.set("a", {"n": 1}, writer="w")
    await state.set("b", "keep", writer="w")
    snap = await state.snapshot()
    await state.set("a", {"n": 2}, writer="w")
    await state.set("a", {"n": 3}, writer="w")
    await state.delete("b", writer="w")
    await state.set("c", "new", writer="w")
    mark = await state.snapshot()

    received: list[Change] = []

    async def listen() -> None:
        async for change in state.subscribe(since=mark, block_ms=100):
            received.append(change)
            if len(received) == 3:
                return

    listener = asyncio.create_task(listen())
    await state.rollback(snap, writer="operator")
    await asyncio.wait_for(listener, timeout=10)

    assert await state.get_all() == {"a": {"n": 1}, "b": "keep"}
    assert (await state.get("a")) == ({"n": 1}, 4)  # versions move forward, never back
    assert sorted((c.key, c.kind, c.writer, c.old, c.new) for c in received) == [
        ("a", "rollback", "operator", {"n": 3}, {"n": 1}),
        ("b", "rollback", "operator", None, "keep"),
        ("c", "rollback", "operator", "new", None),
    ]
    with pytest.raises(SnapshotNotFound):
        await state.rollback("1-1", writer="operator")
    with pytest.raises(SnapshotNotFound, match="not a snapshot id"):
        await state.rollback("yesterday", writer="operator")
    await state.delete_all()


async def test_subscriber_sees_sets_and_resolutions_live(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)  # both client modes work
    try:
        state = make(r, "timestamp")
        v = await state.set("k", 1, writer="a")
        got: list[Change] = []
        started = asyncio.Event()

        async def listen() -> None:
            sub = state.subscribe(block_ms=100)
            first = asyncio.ensure_future(anext(sub))
            await asyncio.sleep(0.2)  # the subscription fixes its start position on the first read
            started.set()
            got.append(await first)
            got.append(await anext(sub))
            await sub.aclose()  # type: ignore[attr-defined]

        task = asyncio.create_task(listen())
        await started.wait()
        await state.set("k", 2, writer="a")
        await state.update("k", 3, writer="b", base_version=v)
        await asyncio.wait_for(task, timeout=10)
        assert [(c.kind, c.new) for c in got] == [("set", 2), ("resolve", 3)]
        await state.delete_all()
    finally:
        await r.aclose()


async def test_ttl_applies_to_every_key(client: aioredis.Redis) -> None:
    state = make(client, ttl_seconds=120)
    await state.set("k", 1, writer="a")
    assert 0 < await client.ttl(state.k_state) <= 120
    assert 0 < await client.ttl(state.k_history) <= 120
    await state.delete_all()
    assert await client.exists(state.k_state, state.k_history, state.k_ver) == 0


def test_bad_configuration_is_rejected_clearly() -> None:
    r = aioredis.Redis()
    with pytest.raises(ValueError, match="expected one of"):
        SharedState(r, "ns", "o", resolution="loudest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="orchestration"):
        SharedState(r, "ns", "a}b")
