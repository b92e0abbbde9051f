"""Deleting every key of an agent or of an orchestration: one batched SCAN + UNLINK for both."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.keys import AgentKeys, OrchestrationKeys

BATCH = 500


async def purge(redis: aioredis.Redis, pattern: str, batch: int = BATCH) -> int:
    """Unlink every key matching ``pattern``, ``batch`` keys per command; returns how many went."""
    removed = 0
    keys: list[Any] = []
    async for key in redis.scan_iter(match=pattern, count=batch):
        keys.append(key)
        if len(keys) >= batch:
            removed += int(await redis.unlink(*keys))
            keys = []
    if keys:
        removed += int(await redis.unlink(*keys))
    return removed


async def purge_agent(redis: aioredis.Redis, namespace: str, agent: str) -> int:
    """Every key of a deleted agent: inbox, results, heartbeats, dead letters, direct messages, stats, breaker."""
    return await purge(redis, AgentKeys(namespace, agent).pattern)


async def purge_orchestration(redis: aioredis.Redis, namespace: str, name: str) -> int:
    """Every key of a deleted orchestration: journals, budget, events, shared state, stored results."""
    return await purge(redis, OrchestrationKeys(namespace, name).pattern)
