"""Per-agent task outcomes in Redis: counters and reputation in hash ``AgentKeys.stats``, the latest outcomes in
list ``AgentKeys.recent`` (newest first). Every run feeds the same record and the operator copies it into the
Agent's status; what the numbers mean (success rate, recommendation, the reputation's moving average) is the
engine's (:mod:`podium.engine.stats`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane.keys import AgentKeys, agent_keys
from podium.dataplane.redisutil import text, watched_update

RECENT = 10  # outcomes remembered in the recent list


@dataclass(frozen=True)
class PerfRecord:
    completed: int = 0
    failed: int = 0
    total_ms: float = 0.0
    quality_sum: float = 0.0
    quality_n: int = 0
    recent: tuple[bool, ...] = ()  # newest first
    reputation: float | None = None


R = TypeVar("R", bound=PerfRecord)


def queue_record(pipe: Pipeline, keys: AgentKeys, ok: bool, duration_ms: float, quality: float | None) -> None:
    """Count one task outcome, as commands on the caller's pipeline."""
    pipe.hincrby(keys.stats, "completed" if ok else "failed", 1)
    pipe.hincrbyfloat(keys.stats, "total_ms", duration_ms)
    if quality is not None:
        pipe.hincrbyfloat(keys.stats, "quality_sum", quality)
        pipe.hincrby(keys.stats, "quality_n", 1)
    pipe.lpush(keys.recent, "1" if ok else "0")
    pipe.ltrim(keys.recent, 0, RECENT - 1)


def queue_read(pipe: Pipeline, keys: AgentKeys) -> None:
    """Read one agent's record as two commands on the caller's pipeline; :func:`parse` takes their two replies."""
    pipe.hgetall(keys.stats)
    pipe.lrange(keys.recent, 0, -1)


def parse(raw: Any, recent: Any, into: type[R]) -> R:
    f = {text(k): text(v) for k, v in (raw or {}).items()}
    return into(
        completed=int(f.get("completed", 0)),
        failed=int(f.get("failed", 0)),
        total_ms=float(f.get("total_ms", 0.0)),
        quality_sum=float(f.get("quality_sum", 0.0)),
        quality_n=int(f.get("quality_n", 0)),
        recent=tuple(text(r) == "1" for r in recent or []),
        reputation=float(f["reputation"]) if "reputation" in f else None,
    )


async def read_many(redis: aioredis.Redis, namespace: str, agents: Sequence[str], into: type[R]) -> dict[str, R]:
    """Records of many agents in one round trip."""
    if not agents:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for agent in agents:
            queue_read(pipe, agent_keys(namespace, agent))
        replies = await pipe.execute()
    return {agent: parse(replies[2 * i], replies[2 * i + 1], into) for i, agent in enumerate(agents)}


async def update_reputation(redis: aioredis.Redis, keys: AgentKeys, step: Callable[[float | None], float]) -> float:
    """Replace the reputation by ``step`` of it, atomically: concurrent updates all count."""

    async def load(pipe: Pipeline) -> float | None:
        raw = await pipe.hget(keys.stats, "reputation")
        return None if raw is None else float(text(raw))

    _, value = await watched_update(
        redis, keys.stats, load, step, lambda pipe, new: pipe.hset(keys.stats, "reputation", repr(new))
    )
    return cast(float, value)  # step always returns a number
