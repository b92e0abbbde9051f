"""Large results by reference and the purge on delete, against a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from podium.dataplane import runs as store
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.purge import purge_orchestration


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_stored_result_reads_back_through_its_reference(r: aioredis.Redis) -> None:
    key = store.result_key("ns1", "big", "uid-1")
    await store.store_result(r, key, '{"x": [1, 2, 3]}')
    assert await store.load_result(r, f"redis:{key}") == {"x": [1, 2, 3]}
    with pytest.raises(LookupError, match="expired or was deleted"):
        await store.load_result(r, "redis:" + OrchestrationKeys("ns1", "big").result("other"))
    with pytest.raises(ValueError, match="unknown result reference"):
        await store.load_result(r, "s3://bucket/x")


async def test_purge_removes_every_key_of_the_orchestration_and_nothing_else(r: aioredis.Redis) -> None:
    prefix = OrchestrationKeys("ns2", "doomed").prefix
    mine = [f"{prefix}{s}" for s in ("journal", "budget", "events", "state:x", "result:u")]
    mine += [f"{prefix}n{i}" for i in range(1200)]  # more than one SCAN batch
    others = [
        OrchestrationKeys("ns2", "doomed-two").budget,
        OrchestrationKeys("ns3", "doomed").budget,
        AgentKeys("ns2", "doomed").inbox,  # an agent of the same name
        AgentKeys("ns2", "doomed").result("u"),
    ]
    for key in mine + others:
        await r.set(key, "1")
    assert await purge_orchestration(r, "ns2", "doomed") == len(mine)
    assert await r.exists(*mine) == 0
    assert await r.exists(*others) == len(others)
