"""An Orchestration's Redis keys as the operator handles them: large results, and the purge on delete.

Every key of one orchestration shares the hash tag ``{<namespace>/<name>}`` (journal, budget, events, shared
state, results), so one SCAN pattern finds them all.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.keys import OrchestrationKeys
from podium.engine.journal import Entry, journal_key

REF_PREFIX = "redis:"


def result_key(namespace: str, name: str, uid: str) -> str:
    # The uid keeps a re-created Orchestration of the same name from reading its predecessor's result.
    return f"{OrchestrationKeys(namespace, name).prefix}result:{uid}"


async def store_result(redis: aioredis.Redis, key: str, encoded: str) -> None:
    await redis.set(key, encoded)


async def load_result(redis: aioredis.Redis, ref: str) -> Any:
    if not ref.startswith(REF_PREFIX):
        raise ValueError(f"unknown result reference {ref!r}: expected '{REF_PREFIX}<key>'")
    raw = await redis.get(ref.removeprefix(REF_PREFIX))
    if raw is None:
        raise LookupError(f"the result at {ref} has expired or was deleted")
    return json.loads(raw)


async def journal_agents(redis: aioredis.Redis, namespace: str, name: str) -> set[str]:
    """Every agent a run of this orchestration dispatched to (any uid, retries included), from its journals."""
    agents: set[str] = set()
    pattern = journal_key(namespace, name).replace("[", "\\[").replace("]", "\\]") + ":*"
    async for key in redis.scan_iter(match=pattern, count=500):
        for raw in (await redis.hgetall(key)).values():
            entry = Entry(**json.loads(raw))
            agents.add(entry.agent)
            agents.update(entry.history)
    agents.discard("")
    return agents


async def purge(redis: aioredis.Redis, namespace: str, name: str, batch: int = 500) -> int:
    """Delete every key of the orchestration; returns how many went."""
    pattern = OrchestrationKeys(namespace, name).prefix.replace("[", "\\[").replace("]", "\\]") + "*"
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
