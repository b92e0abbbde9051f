"""What the operator reads and writes in Redis for an Agent: its ACL user; its heartbeats, backlog, stats and the
engine's circuit breaker.

Keys and value formats are the data plane's (:mod:`podium.dataplane`). Each agent's replicas log in as their own
ACL user, limited by :func:`podium.dataplane.acl.agent_acl_rules` to that agent's keys and functions. The operator
re-applies the user (on every node of the deployment), the function library and the inbox's consumer group on
every full reconcile: all idempotent, and re-applying restores users lost when a Redis without an ACL file restarts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from podium.api.agent import PerformanceTargets
from podium.dataplane import perf, provision
from podium.dataplane.keys import AgentKeys
from podium.dataplane.records import ReplicaInfo, parse_replicas
from podium.engine.resilience import Breaker, parse_breaker
from podium.engine.stats import PerfStats, parse_stats, recommendation
from podium.operator.agents.children import redis_username
from podium.operator.conditions import now_rfc3339


def new_password() -> str:
    return secrets.token_urlsafe(32)


async def ensure_acl_user(
    r: aioredis.Redis, namespace: str, agent: str, password: str, *, max_bytes: int | None = None, a2a: bool = False
) -> None:
    """The agent's user, the function library and the inbox's consumer group; then drop consumers that left. The
    rules name only commands Redis 7.0 knows (no CLIENT SETINFO: redis-py ignores its refusal), so the server
    accepts them whole; an error here is a real misconfiguration and must surface."""
    username = redis_username(namespace, agent)
    await provision.ensure_agent(r, namespace, agent, username, password, max_bytes=max_bytes, a2a=a2a)
    await provision.prune_consumers(r, namespace, agent)


async def acl_user_exists(r: aioredis.Redis, namespace: str, agent: str) -> bool:
    return await provision.user_exists(r, redis_username(namespace, agent))


async def delete_acl_user(r: aioredis.Redis, namespace: str, agent: str) -> bool:
    """Remove the user and end its open connections, so a deleted agent's replicas lose access at once."""
    return await provision.delete_user(r, redis_username(namespace, agent))


async def redis_now(r: aioredis.Redis) -> float:
    seconds, micros = await r.time()
    return float(seconds) + float(micros) / 1e6


@dataclass(frozen=True)
class AgentRuntime:
    """One round's reading of an agent's Redis-side state; ``None`` fields could not be read."""

    now: float
    heartbeats: list[ReplicaInfo] | None
    backlog: int | None
    stats: dict[str, Any] | None
    dead_letters: int = 0
    breaker: Breaker | None = None


async def read_runtime(
    r: aioredis.Redis, namespace: str, agent: str, targets: PerformanceTargets | None = None
) -> AgentRuntime:
    """Heartbeats, backlog, dead letters, the engine's breaker and the stats (judged against ``targets``)."""
    keys = AgentKeys(namespace, agent)
    pipe = r.pipeline(transaction=False)
    pipe.time()
    pipe.hgetall(keys.heartbeats)
    pipe.xlen(keys.inbox)
    pipe.xlen(keys.dlq)
    pipe.get(keys.breaker)
    perf.queue_read(pipe, keys)
    seconds_micros, beats, length, dead, breaker, *record = await pipe.execute()
    now = float(seconds_micros[0]) + float(seconds_micros[1]) / 1e6
    # Every acknowledgement deletes its entry (COMPLETE, RELEASE, DEAD_LETTER, CANCEL), so the inbox's length is
    # the backlog: undelivered plus delivered-but-unfinished tasks.
    stats = status_stats(parse_stats(*record), targets or PerformanceTargets())
    return AgentRuntime(
        now, parse_replicas(beats), int(length), stats, dead_letters=int(dead), breaker=parse_breaker(breaker)
    )


def status_stats(stats: PerfStats, targets: PerformanceTargets) -> dict[str, Any] | None:
    """status.stats (wire form) from the engine's record; None while the agent has run nothing."""
    if not stats.tasks:
        return None
    out: dict[str, Any] = {
        "tasksCompleted": stats.completed,
        "tasksFailed": stats.failed,
        "recommendation": recommendation(stats, targets),
    }
    if stats.failures:
        out["recentFailures"] = [
            {"task": f.task, "error": f.error[:1024], "time": now_rfc3339(f.time)} for f in stats.failures
        ]
    if stats.success_rate is not None:
        out["successRate"] = round(stats.success_rate, 4)
    if stats.avg_ms is not None:
        out["averageLatencySeconds"] = round(stats.avg_ms / 1000.0, 4)
    if stats.avg_quality is not None:
        out["averageQuality"] = round(stats.avg_quality, 4)
    return out
