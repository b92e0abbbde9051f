"""An operator replica's run sharder on a real redis-server: what a round costs in lease scripts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis

from podium.operator.orchestrations.shards import Sharder


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

    sharder = Sharder(None, client, [ns], drive, cleanup, lease_seconds=30, replica="only")  # type: ignore[arg-type]
    body = lambda i: {"metadata": {"namespace": ns, "name": f"r{i}", "uid": f"u{i}"}, "status": {}}  # noqa: E731
    try:
        sharder.watch.bodies = {(ns, f"r{i}"): body(i) for i in range(50)}
        await sharder.round()
        assert len(sharder.driving) == 50  # taken: one lease each
        before = counter.scripts
        await sharder.round(renew=False)  # woken by a status patch of one of them: nothing changed
        assert counter.scripts == before  # no heartbeat, no 50 lease renewals
        sharder.watch.bodies[(ns, "r50")] = body(50)
        before = counter.scripts
        await sharder.round(renew=False)  # a new run: its lease alone
        assert len(sharder.driving) == 51 and counter.scripts - before == 1
        before = counter.scripts
        await sharder.round()  # the renewal every lease/3: every lease it holds, and the heartbeat
        assert counter.scripts - before == 52
        assert {await sharder.shards.holder(ns, f"r{i}", f"u{i}") for i in range(51)} == {"only"}
    finally:
        stop.set()
        await asyncio.gather(*(d.task for d in sharder.driving.values()))
        await client.aclose()
