"""BreakerStore updates against a real Redis: concurrent writers neither lose failures nor share the probe."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from podium.api.agent import CircuitBreaker
from podium.engine.resilience import HALF_OPEN, OPEN, Breaker, BreakerStore
from tests.support.concurrency import N, warm


async def test_concurrent_failures_on_one_agent_all_count(client: aioredis.Redis, ns: str) -> None:
    store = BreakerStore(client, ns)
    await warm(client)
    config = CircuitBreaker(failure_threshold=1000, recovery_timeout_seconds=60)
    # Each writer reads first, as RunContext does, so every one of them starts from the same stale value.
    seen = await store.load("w")
    await asyncio.gather(*(store.record("w", False, 1.0, config, seen=seen) for _ in range(N)))
    assert (await store.load("w")).failures == N


async def test_concurrent_failures_open_the_breaker_at_the_threshold(client: aioredis.Redis, ns: str) -> None:
    store = BreakerStore(client, ns)
    await warm(client)
    config = CircuitBreaker(failure_threshold=5, recovery_timeout_seconds=60)
    await asyncio.gather(*(store.record("w", False, 1.0, config) for _ in range(5)))
    breaker = await store.load("w")
    assert breaker.state == OPEN and breaker.failures == 5


async def test_only_one_of_many_concurrent_dispatches_becomes_the_probe(client: aioredis.Redis, ns: str) -> None:
    store = BreakerStore(client, ns)
    await warm(client)
    config = CircuitBreaker(failure_threshold=3, recovery_timeout_seconds=10)
    await store.save("w", Breaker(state=OPEN, failures=3, opened_at=100.0))
    seen = await store.load("w")
    admitted = await asyncio.gather(*(store.admit("w", 110.0, config, seen=seen) for _ in range(N)))
    assert sum(admitted) == 1
    breaker = await store.load("w")
    assert breaker.state == HALF_OPEN and breaker.probe_at == 110.0


async def test_a_stale_probe_lets_exactly_one_new_probe_through_after_the_timeout(
    client: aioredis.Redis, ns: str
) -> None:
    store = BreakerStore(client, ns)
    await warm(client)
    config = CircuitBreaker(failure_threshold=3, recovery_timeout_seconds=10)
    await store.save("w", Breaker(state=HALF_OPEN, failures=3, opened_at=100.0, probe_at=110.0))
    assert not await store.admit("w", 119.0, config)  # the probe may still report
    admitted = await asyncio.gather(*(store.admit("w", 120.0, config) for _ in range(N)))
    assert sum(admitted) == 1
    assert (await store.load("w")).probe_at == 120.0


async def test_the_probes_success_closes_the_breaker_for_everyone(client: aioredis.Redis, ns: str) -> None:
    store = BreakerStore(client, ns)
    await warm(client)
    config = CircuitBreaker(failure_threshold=3, recovery_timeout_seconds=10)
    await store.save("w", Breaker(state=OPEN, failures=3, opened_at=100.0))
    assert await store.admit("w", 110.0, config)
    await store.record("w", True, 111.0, config, seen=await store.load("w"))
    assert await store.load("w") == Breaker()
    assert all(await asyncio.gather(*(store.admit("w", 112.0, config) for _ in range(5))))
