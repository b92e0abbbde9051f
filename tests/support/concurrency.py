"""Making concurrent writers really race against one Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

N = 25  # concurrent writers


async def warm(client: aioredis.Redis) -> None:
    # Open N pooled connections up front: otherwise the first writer finishes while the others are still
    # connecting, and the race these tests are about never happens.
    await asyncio.gather(*(client.blpop(["podium-test:nothing"], timeout=0.05) for _ in range(N)))
