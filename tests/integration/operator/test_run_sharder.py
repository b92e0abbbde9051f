"""An operator replica's run sharder on a real redis-server: what a round costs in lease scripts, and its leases
kept from a thread of their own while the event loop stalls."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from podium.api.common import FINALIZER
from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.shards import RunRef, Shards
from podium.operator.orchestrations.leases import LeaseKeeper
from podium.operator.orchestrations.shards import ObjectChores, Sharder


class CountingScripts(aioredis.Connection):
    """A real connection counting the lease scripts it sends (EVALSHA, each hold or release of one run)."""

    scripts = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, (bytes, str, memoryview)) else command
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        type(self).scripts += packed.count(b"\r\nEVALSHA\r\n")
        await super().send_packed_command(command, check_health)


async def test_a_round_the_watch_wakes_touches_only_what_changed_and_a_renewal_round_every_lease(
    redis_url: str,
) -> None:
    counter = type("Counter", (CountingScripts,), {"scripts": 0})
    client = aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(redis_url, connection_class=counter))
    ns = "ns" + uuid.uuid4().hex[:8]
    stop = asyncio.Event()

    async def drive(_body: dict[str, Any], _stopping: Any) -> None:
        await stop.wait()

    async def cleanup(_body: dict[str, Any]) -> None:
        return None

    sharder = Sharder(
        None,  # type: ignore[arg-type]
        client,
        [ns],
        drive,
        cleanup,
        lambda: aioredis.Redis.from_url(redis_url),
        lease_seconds=30,
        replica="only",
    )
    body = lambda i: {"metadata": {"namespace": ns, "name": f"r{i}", "uid": f"u{i}"}, "status": {}}  # noqa: E731
    try:
        sharder.watch.bodies = {(ns, f"r{i}"): body(i) for i in range(50)}
        await sharder.round()
        assert len(sharder.driving) == 50  # taken: one lease each
        before = counter.scripts
        await sharder.round(beat=False)  # woken by a status patch of one of them: nothing changed
        assert counter.scripts == before  # no heartbeat, no 50 lease renewals
        sharder.watch.bodies[(ns, "r50")] = body(50)
        before = counter.scripts
        await sharder.round(beat=False)  # a new run: its lease alone
        assert len(sharder.driving) == 51 and counter.scripts - before == 1
        before = counter.scripts
        await sharder.round()  # the heartbeat every lease/3; the keeper renews the leases, from its own thread
        assert counter.scripts - before == 1
        assert {await sharder.shards.holder(ns, f"r{i}", f"u{i}") for i in range(51)} == {"only"}
    finally:
        stop.set()
        await asyncio.gather(*(d.task for d in sharder.driving.values()))
        await client.aclose()


def stall(seconds: float) -> None:
    """Keep the event loop from running anything for ``seconds``, as a replica starved of CPU would."""
    time.sleep(seconds)


def bodies(ns: str, count: int) -> dict[tuple[str, str], dict[str, Any]]:
    return {(ns, f"r{i}"): {"metadata": {"namespace": ns, "name": f"r{i}", "uid": f"u{i}"}} for i in range(count)}


@pytest.fixture
async def sharder(redis_url: str) -> AsyncIterator[Sharder]:
    """A replica's sharder over a fresh namespace (its watch filled by hand), with a 1.5 s run lease."""
    client = aioredis.Redis.from_url(redis_url)
    stop = asyncio.Event()

    async def drive(_body: dict[str, Any], stopping: Callable[[], bool]) -> None:
        while not stop.is_set() and not stopping():  # noqa: ASYNC110 (two ways to end, as a real drive has)
            await asyncio.sleep(0.05)

    async def cleanup(_body: dict[str, Any]) -> None:
        return None

    ns = "ns" + uuid.uuid4().hex[:8]
    connect = lambda: aioredis.Redis.from_url(redis_url)  # noqa: E731
    made = Sharder(None, client, [ns], drive, cleanup, connect, lease_seconds=1.5, replica="slow")  # type: ignore[arg-type]
    made.watch.bodies = bodies(ns, 3)
    try:
        yield made
    finally:
        stop.set()
        await made.keeper.stop()
        await asyncio.gather(*(d.task for d in made.driving.values()))
        await client.aclose()


async def holders(shards: Shards, refs: list[RunRef]) -> set[str | None]:
    return {await shards.holder(*ref) for ref in refs}


async def test_a_replica_whose_event_loop_stalls_past_its_lease_keeps_its_runs(
    sharder: Sharder, redis_url: str
) -> None:
    await sharder.round()
    refs = sorted(sharder.driving)
    assert len(refs) == 3
    sharder.keeper.start()
    stall(3 * sharder.lease)  # twice the lease: a CPU limit, a hundred runs starting at once
    other_client = aioredis.Redis.from_url(redis_url)
    try:
        other = Shards(other_client, sharder.group, "other", sharder.lease)
        assert await holders(other, refs) == {"slow"}
        assert await other.hold(refs) == dict.fromkeys(refs, False)  # another replica cannot take them
    finally:
        await other_client.aclose()
    assert sorted(sharder.driving) == refs


async def test_a_run_whose_lease_another_replica_took_is_stopped_at_the_next_round(
    sharder: Sharder, redis_url: str
) -> None:
    await sharder.round()
    refs = sorted(sharder.driving)
    taken = refs[0]
    other_client = aioredis.Redis.from_url(redis_url)
    try:
        other = Shards(other_client, sharder.group, "other", sharder.lease)
        await other_client.set(OrchestrationKeys(taken[0], taken[1]).owner(taken[2]), "other", px=10_000)
        assert await other.holder(*taken) == "other"
        sharder.keeper.start()
        deadline = time.monotonic() + 3 * sharder.lease
        while taken not in sharder.suspect and time.monotonic() < deadline:  # noqa: ASYNC110 (set by a thread)
            await asyncio.sleep(0.05)
        assert sharder.suspect == {taken}  # the keeper found it, and told the loop
        await sharder.round(beat=False)
        assert sorted(sharder.driving) == refs[1:]
        assert await holders(other, refs[1:]) == {"slow"}
    finally:
        await other_client.aclose()


async def test_a_stuck_event_loop_lets_its_run_leases_lapse(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    refs: list[RunRef] = [("ns" + uuid.uuid4().hex[:8], f"r{i}", f"u{i}") for i in range(3)]
    shards = Shards(client, "g", "stuck", 1.0)
    keeper = LeaseKeeper(lambda: aioredis.Redis.from_url(redis_url), "g", "stuck", 1.0, lambda _: None, stall_seconds=1)
    try:
        assert all((await shards.hold(refs)).values())
        keeper.keep(refs)
        keeper.start()
        await asyncio.sleep(1.5)
        assert await holders(shards, refs) == {"stuck"}  # renewed past the lease while the loop answers
        stall(3.5)  # stuck past stall_seconds: the keeper stops renewing
        assert await holders(shards, refs) == {None}
    finally:
        await keeper.stop()
        await client.aclose()


async def test_the_owner_guards_its_runs_cleans_up_a_deleted_one_before_letting_it_go_and_notes_a_late_edit(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    ns = "ns" + uuid.uuid4().hex[:8]
    done: list[tuple[str, str]] = []
    stop = asyncio.Event()
    first_guard = asyncio.Event()

    async def drive(_body: dict[str, Any], stopping: Callable[[], bool]) -> None:
        while not stop.is_set() and not stopping():  # noqa: ASYNC110 (two ways to end, as a real drive has)
            await asyncio.sleep(0.05)

    async def cleanup(body: dict[str, Any]) -> None:
        done.append(("cleanup", body["metadata"]["name"]))

    def chore(what: str) -> Callable[[dict[str, Any]], Any]:
        async def do(body: dict[str, Any]) -> None:
            if what == "guard" and not first_guard.is_set():
                first_guard.set()
                raise RuntimeError("the API server is away")  # tried again at a later round
            done.append((what, body["metadata"]["name"]))

        return do

    objects = ObjectChores(guard=chore("guard"), release=chore("release"), note=chore("note"))
    connect = lambda: aioredis.Redis.from_url(redis_url)  # noqa: E731
    sharder = Sharder(None, client, [ns], drive, cleanup, connect, lease_seconds=30, replica="only", objects=objects)  # type: ignore[arg-type]

    def body(name: str, version: str, **meta: Any) -> dict[str, Any]:
        status = meta.pop("status", {"phase": "Running", "observedGeneration": 1})
        return {
            "metadata": {"namespace": ns, "name": name, "uid": f"u-{name}", "resourceVersion": version, "generation": 1}
            | meta,
            "status": status,
        }

    async def settled() -> None:
        while sharder._chores:  # noqa: ASYNC110 (the chores are tasks of this loop)
            await asyncio.sleep(0.01)

    try:
        sharder.watch.bodies = {(ns, "new"): body("new", "1")}
        await sharder.round()
        await settled()
        assert done == [] and first_guard.is_set()  # failed: logged, not counted as done
        await sharder.round(beat=False)
        await settled()
        await sharder.round(beat=False)  # the same version again (the watch has not brought the patched one)
        await settled()
        assert done == [("guard", "new")]
        sharder.watch.bodies[(ns, "new")] = body("new", "2", finalizers=[FINALIZER])
        assert (ns, "new", "u-new") in sharder.driving
        # Deleted while it runs: the drive stops, then the cleanup, then the finalizer goes (in that order).
        sharder.watch.bodies[(ns, "new")] = body(
            "new", "3", finalizers=[FINALIZER], deletionTimestamp="2026-12-03T10:00:00Z"
        )
        await sharder.round(beat=False)
        await settled()
        assert (ns, "new", "u-new") not in sharder.driving
        assert done[1:] == [("cleanup", "new"), ("release", "new")]
        # A finished run whose spec changed afterwards: noted once.
        late = body("late", "5", finalizers=[FINALIZER], generation=2)
        late["status"] = {"phase": "Succeeded", "observedGeneration": 1}
        sharder.watch.bodies = {(ns, "late"): late}
        for _ in range(2):
            await sharder.round(beat=False)
            await settled()
        assert done[3:] == [("note", "late")]
        assert sharder.driving == {}
    finally:
        stop.set()
        await sharder.stop()
        await client.aclose()


async def test_a_deleted_run_whose_cleanup_cannot_be_done_says_why_on_the_object_once(redis_url: str) -> None:
    """`kubectl delete` of a run waits on its finalizer until the cleanup is done: a cleanup that fails, or a replica
    that cannot reach Redis to do it, says so on the object (one Warning until it succeeds), not only in a log."""
    ns = "ns" + uuid.uuid4().hex[:8]
    told: list[tuple[str, str]] = []
    released: list[str] = []
    failures = 2

    async def cleanup(_body: dict[str, Any]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("Redis is restarting")

    async def nothing(_body: dict[str, Any]) -> None:
        return None

    async def release(body: dict[str, Any]) -> None:
        released.append(body["metadata"]["name"])

    async def drive(_body: dict[str, Any], _stopping: Callable[[], bool]) -> None:
        return None

    objects = ObjectChores(
        guard=nothing,
        release=release,
        note=nothing,
        stalled=lambda body, why: told.append((body["metadata"]["name"], why)),
    )
    deleted = {
        "metadata": {
            "namespace": ns,
            "name": "gone",
            "uid": "u-gone",
            "resourceVersion": "7",
            "finalizers": [FINALIZER],
            "deletionTimestamp": "2026-12-03T10:00:00Z",
        }
    }
    client = aioredis.Redis.from_url(redis_url)
    connect = lambda: aioredis.Redis.from_url(redis_url)  # noqa: E731
    sharder = Sharder(None, client, [ns], drive, cleanup, connect, lease_seconds=30, replica="only", objects=objects)  # type: ignore[arg-type]
    sharder.watch.bodies = {(ns, "gone"): deleted}
    try:
        for _ in range(3):
            await sharder.round(beat=False)
            while sharder._chores:  # noqa: ASYNC110 (the chores are tasks of this loop)
                await asyncio.sleep(0.01)
        assert released == ["gone"]  # the third try cleaned up, then let the object go
        [(name, why)] = told  # two failures, one Warning
        assert name == "gone" and "the run's cleanup failed: Redis is restarting" in why, why
    finally:
        await sharder.stop()
        await client.aclose()

    # A replica that cannot reach Redis at all: its rounds fail before any chore; it still says why, once.
    told.clear()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens here once the socket closes
    away = aioredis.Redis(host="127.0.0.1", port=dead, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    cut_off = Sharder(None, away, [ns], drive, cleanup, connect, lease_seconds=0.6, replica="only", objects=objects)  # type: ignore[arg-type]
    cut_off.watch.bodies = {(ns, "gone"): deleted}
    cut_off.members = ["only"]  # as its last round before Redis went away saw them
    cut_off.watch.synced.set()
    loop = asyncio.create_task(cut_off._run())
    try:
        await asyncio.sleep(1.5)  # several failed rounds
        [(name, why)] = told
        assert name == "gone" and "cannot clean up the run now" in why and str(dead) in why, why
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await away.aclose()
