"""Operator replicas' membership and run leases on a real redis-server (podium.dataplane.shards)."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from podium.dataplane.shards import Shards


async def test_members_see_each_other_and_a_silent_one_drops_out_after_the_lease(client: aioredis.Redis) -> None:
    group = "g" + uuid.uuid4().hex[:8]
    a, b = Shards(client, group, "a", 1.0), Shards(client, group, "b", 1.0)
    assert await a.beat() == ["a"]
    assert await b.beat() == ["a", "b"]
    await asyncio.sleep(1.2)  # a stops beating (killed): past the lease it is no longer a member
    assert await b.beat() == ["b"]
    await a.beat()
    await a.leave()  # a clean shutdown leaves at once
    assert await b.beat() == ["b"]


async def test_a_run_is_held_by_one_replica_at_a_time_until_released_or_lapsed(client: aioredis.Redis) -> None:
    group, run = "g" + uuid.uuid4().hex[:8], ("ns", "pipe", uuid.uuid4().hex)
    other = ("ns", "other", uuid.uuid4().hex)
    a, b = Shards(client, group, "a", 1.0), Shards(client, group, "b", 1.0)
    assert await a.hold([run]) == {run: True}
    assert await b.hold([run, other]) == {run: False, other: True}
    assert await a.hold([run]) == {run: True}  # renewed
    assert await a.holder(*run) == "a"
    await b.release([run])  # not b's: nothing happens
    assert await a.holder(*run) == "a"
    await a.release([run])
    assert await b.hold([run]) == {run: True}
    await asyncio.sleep(1.2)  # b killed: its lease lapses
    assert await a.hold([run]) == {run: True}
    assert await a.holder(*run) == "a"
