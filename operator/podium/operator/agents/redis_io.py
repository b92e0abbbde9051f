"""What the operator reads and writes in Redis: agents' ACL users, heartbeats, backlog and stats.

Each agent's replicas log in as their own ACL user, limited by `podium.dataplane.keys.agent_acl_rules` to that
agent's keys. The operator re-applies the user on every full reconcile: `ACL SETUSER ... reset` is idempotent,
and re-applying restores users lost when a Redis without an ACL file restarts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.keys import AgentKeys, agent_acl_rules
from podium.dataplane.redisutil import text
from podium.engine.stats import PerfStats, StatsStore, parse_stats
from podium.operator.agents.children import redis_username
from podium.operator.agents.health import Heartbeat


def new_password() -> str:
    return secrets.token_urlsafe(32)


async def ensure_acl_user(r: aioredis.Redis, namespace: str, agent: str, password: str) -> None:
    # The rules name only commands Redis 7.0 knows (no CLIENT SETINFO: redis-py ignores its refusal), so the
    # server accepts them whole; an error here is a real misconfiguration and must surface.
    rules = agent_acl_rules(namespace, agent)
    await r.execute_command("ACL", "SETUSER", redis_username(namespace, agent), "reset", "on", f">{password}", *rules)


async def acl_user_exists(r: aioredis.Redis, namespace: str, agent: str) -> bool:
    return await r.execute_command("ACL", "GETUSER", redis_username(namespace, agent)) is not None


async def delete_acl_user(r: aioredis.Redis, namespace: str, agent: str) -> bool:
    """Remove the user and end its open connections, so a deleted agent's replicas lose access at once."""
    removed = int(await r.execute_command("ACL", "DELUSER", redis_username(namespace, agent)))
    return removed > 0


async def purge_agent_keys(r: aioredis.Redis, namespace: str, agent: str) -> int:
    """Delete every key of a deleted agent (inbox, results, heartbeats, dead letters, stats)."""
    count = 0
    async for key in r.scan_iter(match=AgentKeys(namespace, agent).pattern, count=500):
        count += int(await r.unlink(key))
    return count


async def redis_now(r: aioredis.Redis) -> float:
    seconds, micros = await r.time()
    return float(seconds) + float(micros) / 1e6


def parse_heartbeats(raw: dict[Any, Any]) -> list[Heartbeat]:
    """Entries are ``load in_flight last_seen_ms lease_ms`` (see podium.dataplane.scripts.HEARTBEAT)."""
    out = []
    for replica, value in raw.items():
        parts = text(value).split()
        if len(parts) < 3:
            continue
        try:
            out.append(Heartbeat(text(replica), float(parts[2]) / 1000.0, float(parts[0]), int(float(parts[1]))))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class AgentRuntime:
    """One round's reading of an agent's Redis-side state; ``None`` fields could not be read."""

    now: float
    heartbeats: list[Heartbeat] | None
    backlog: int | None
    stats: dict[str, Any] | None
    dead_letters: int = 0


async def read_runtime(r: aioredis.Redis, namespace: str, agent: str) -> AgentRuntime:
    keys = AgentKeys(namespace, agent)
    pipe = r.pipeline(transaction=False)
    pipe.time()
    pipe.hgetall(keys.heartbeats)
    pipe.xlen(keys.inbox)
    pipe.xlen(keys.dlq)
    StatsStore(r, namespace).queue_get(pipe, agent)
    seconds_micros, beats, length, dead, perf_hash, perf_recent = await pipe.execute()
    now = float(seconds_micros[0]) + float(seconds_micros[1]) / 1e6
    # Every acknowledgement deletes its entry (COMPLETE, RELEASE, DEAD_LETTER, CANCEL), so the inbox's length is
    # the backlog: undelivered plus delivered-but-unfinished tasks.
    stats = _status_stats(parse_stats(perf_hash, perf_recent))
    return AgentRuntime(now, parse_heartbeats(beats), int(length), stats, dead_letters=int(dead))


def _status_stats(perf: PerfStats) -> dict[str, Any] | None:
    if not perf.tasks:
        return None
    out: dict[str, Any] = {
        "tasksCompleted": perf.completed,
        "tasksFailed": perf.failed,
        "recentFailures": perf.recent_failures,
        "recommendation": perf.recommendation,
    }
    if perf.success_rate is not None:
        out["successRate"] = round(perf.success_rate, 4)
    if perf.avg_ms is not None:
        out["averageLatencySeconds"] = round(perf.avg_ms / 1000.0, 4)
    if perf.avg_quality is not None:
        out["averageQuality"] = round(perf.avg_quality, 4)
    return out
