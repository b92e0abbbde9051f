"""Market reputation against a real Redis: results that land at the same time all move the reputation."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from podium.engine.stats import REPUTATION_ALPHA, StatsStore, next_reputation
from tests.support.concurrency import N, warm


async def test_concurrent_outcomes_all_count(client: aioredis.Redis, ns: str) -> None:
    stats = StatsStore(client, ns)
    await warm(client)
    await asyncio.gather(*(stats.update_reputation("seller", True, 1.0) for _ in range(N)))
    # N successes folded in one after another, whatever their order: 1 - 0.5 * (1 - alpha)^N.
    assert (await stats.get("seller")).reputation == pytest.approx(1 - 0.5 * (1 - REPUTATION_ALPHA) ** N)


async def test_a_failure_and_a_success_both_count_whatever_the_order(client: aioredis.Redis, ns: str) -> None:
    stats = StatsStore(client, ns)
    await warm(client)
    await asyncio.gather(stats.update_reputation("seller", False, None), stats.update_reputation("seller", True, 0.8))
    after = (await stats.get("seller")).reputation
    orders = (
        next_reputation(next_reputation(None, False, None), True, 0.8),
        next_reputation(next_reputation(None, True, 0.8), False, None),
    )
    assert after is not None and any(after == pytest.approx(o) for o in orders), (after, orders)
