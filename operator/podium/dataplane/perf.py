"""Per-agent task outcomes in Redis: counters and reputation in hash ``AgentKeys.stats``, the latest outcomes in
list ``AgentKeys.recent`` and the latest failures (task, error, time) in list ``AgentKeys.failures`` (both newest
first). Every run feeds the same record and the operator copies it into the Agent's status; what the numbers mean
(success rate, recommendation, the reputation's moving average) is the engine's (:mod:`podium.engine.stats`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from podium.dataplane import codec
from podium.dataplane.keys import AgentKeys, agent_keys
from podium.dataplane.redisutil import text, watched_update

RECENT = 10  # outcomes remembered in the recent list
FAILURES = 5  # failures remembered with their detail


@dataclass(frozen=True)
class Failure:
    """One failed attempt as remembered: the task id, its error and when it ended (unix seconds)."""

    task: str
    error: str
    time: float


@dataclass(frozen=True)
class PerfRecord:
    completed: int = 0
    failed: int = 0
    total_ms: float = 0.0
    quality_sum: float = 0.0
    quality_n: int = 0
    recent: tuple[bool, ...] = ()  # newest first
    reputation: float | None = None
    failures: tuple[Failure, ...] = ()  # newest first


R = TypeVar("R", bound=PerfRecord)


@dataclass(frozen=True)
class Outcome:
    """One task outcome as counted: success, duration, quality (if scored), the failure's detail (if failed)."""

    ok: bool
    duration_ms: float
    quality: float | None = None
    failure: Failure | None = None


def queue_record(
    pipe: Pipeline,
    keys: AgentKeys,
    ok: bool,
    duration_ms: float,
    quality: float | None,
    failure: Failure | None = None,
) -> None:
    """Count one task outcome, as commands on the caller's pipeline; a failure's detail is kept with the last few."""
    queue_records(pipe, keys, [Outcome(ok, duration_ms, quality, failure)])


def queue_records(pipe: Pipeline, keys: AgentKeys, outcomes: Sequence[Outcome]) -> None:
    """Count one agent's outcomes, oldest first, as commands on the caller's pipeline: the same record as counting
    them one by one, in a handful of commands however many they are (a batch of parallel tasks' results)."""
    if not outcomes:
        return
    completed = sum(1 for o in outcomes if o.ok)
    if completed:
        pipe.hincrby(keys.stats, "completed", completed)
    if completed < len(outcomes):
        pipe.hincrby(keys.stats, "failed", len(outcomes) - completed)
    pipe.hincrbyfloat(keys.stats, "total_ms", sum(o.duration_ms for o in outcomes))
    scored = [o.quality for o in outcomes if o.quality is not None]
    if scored:
        pipe.hincrbyfloat(keys.stats, "quality_sum", sum(scored))
        pipe.hincrby(keys.stats, "quality_n", len(scored))
    # LPUSH of many values pushes them one after the other: the newest ends first, as with one LPUSH each.
    pipe.lpush(keys.recent, *("1" if o.ok else "0" for o in outcomes[-RECENT:]))
    pipe.ltrim(keys.recent, 0, RECENT - 1)
    failures = [o.failure for o in outcomes if o.failure is not None][-FAILURES:]
    if failures:
        pipe.lpush(keys.failures, *(codec.dumps({"task": f.task, "error": f.error, "time": f.time}) for f in failures))
        pipe.ltrim(keys.failures, 0, FAILURES - 1)


READS = 3  # commands (and replies) of one queue_read


def queue_read(pipe: Pipeline, keys: AgentKeys) -> None:
    """Read one agent's record as READS commands on the caller's pipeline; :func:`parse` takes their replies."""
    pipe.hgetall(keys.stats)
    pipe.lrange(keys.recent, 0, -1)
    pipe.lrange(keys.failures, 0, -1)


def queue_read_recent(pipe: Pipeline, keys: AgentKeys) -> None:
    """Read only one agent's recent outcomes (what ranking agents for a step weighs), as one command on the caller's
    pipeline; :func:`parse_recent` takes its reply."""
    pipe.lrange(keys.recent, 0, -1)


def parse_recent(recent: Any, into: type[R]) -> R:
    """A record holding only the recent outcomes (the rest as for an agent with no record)."""
    return into(recent=tuple(text(r) == "1" for r in recent or []))


def _failure(raw: Any) -> Failure | None:
    try:
        data = codec.loads(raw)
        return Failure(str(data["task"]), str(data["error"]), float(data["time"]))
    except (ValueError, KeyError, TypeError):
        return None  # a malformed entry (a writer from another version) is left out, not fatal


def parse(raw: Any, recent: Any, failures: Any, into: type[R]) -> R:
    f = {text(k): text(v) for k, v in (raw or {}).items()}
    return into(
        completed=int(f.get("completed", 0)),
        failed=int(f.get("failed", 0)),
        total_ms=float(f.get("total_ms", 0.0)),
        quality_sum=float(f.get("quality_sum", 0.0)),
        quality_n=int(f.get("quality_n", 0)),
        recent=tuple(text(r) == "1" for r in recent or []),
        reputation=float(f["reputation"]) if "reputation" in f else None,
        failures=tuple(x for x in (_failure(r) for r in failures or []) if x is not None),
    )


async def read_many(redis: aioredis.Redis, namespace: str, agents: Sequence[str], into: type[R]) -> dict[str, R]:
    """Records of many agents in one round trip."""
    if not agents:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        queue_read_many(pipe, namespace, agents)
        replies = await pipe.execute()
    return parse_many(agents, replies, into)


def queue_read_many(pipe: Pipeline, namespace: str, agents: Sequence[str]) -> None:
    """:func:`read_many` as commands on the caller's pipeline; :func:`parse_many` takes their replies."""
    for agent in agents:
        queue_read(pipe, agent_keys(namespace, agent))


def parse_many(agents: Sequence[str], replies: Sequence[Any], into: type[R]) -> dict[str, R]:
    out = {}
    for i, agent in enumerate(agents):
        raw, recent, failures = replies[READS * i : READS * (i + 1)]
        out[agent] = parse(raw, recent, failures, into)
    return out


async def update_reputation(redis: aioredis.Redis, keys: AgentKeys, step: Callable[[float | None], float]) -> float:
    """Replace the reputation by ``step`` of it, atomically: concurrent updates all count."""

    async def load(pipe: Pipeline) -> float | None:
        raw = await pipe.hget(keys.stats, "reputation")
        return None if raw is None else float(text(raw))

    _, value = await watched_update(
        redis, keys.stats, load, step, lambda pipe, new: pipe.hset(keys.stats, "reputation", repr(new))
    )
    return cast(float, value)  # step always returns a number
