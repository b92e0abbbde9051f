"""What Redis holds for an Agent before its replicas start, set up by the operator: the function library, the
agent's ACL user on every node, its inbox's consumer group; and housekeeping of the group's consumers.

ACL users are not replicated (neither to a Sentinel deployment's replicas nor across a Cluster), so every node
gets the user; the library is loaded on every primary (replicas get it by replication). Re-applying is safe and
is how users lost with a Redis restart come back.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from podium.dataplane import topology
from podium.dataplane.acl import Deployment, agent_acl_rules
from podium.dataplane.keys import GROUP, AgentKeys
from podium.dataplane.library import ensure_library, is_current

# Consumers that hold nothing and have neither heartbeat nor read for this long are deleted: replicas that left.
# A live replica that is deleted anyway (a long task, no read) is re-created by its next read, holding nothing lost.
PRUNE_IDLE_MS = 60_000


def deployment(redis: Any) -> Deployment:
    if topology.is_cluster(redis):
        return Deployment.cluster
    if topology.is_sentinel(redis):
        return Deployment.sentinel
    return Deployment.standalone


async def ensure_agent(
    redis: aioredis.Redis,
    namespace: str,
    agent: str,
    username: str,
    password: str,
    *,
    max_bytes: int | None = None,
    a2a: bool = False,
) -> None:
    """The library (loaded only when missing or of another version), the agent's user (rules of
    :func:`podium.dataplane.acl.agent_acl_rules`) and its inbox's group.

    An error is a real misconfiguration (the rules name only commands Redis 7.0 knows) and is raised.
    """
    if not await is_current(redis, max_bytes=max_bytes):
        await ensure_library(redis, max_bytes=max_bytes)
    rules = agent_acl_rules(namespace, agent, deployment(redis), a2a=a2a)
    await topology.on_every_node(redis, "ACL", "SETUSER", username, "reset", "on", f">{password}", *rules)
    try:
        await redis.xgroup_create(AgentKeys(namespace, agent).inbox, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def user_exists(redis: aioredis.Redis, username: str) -> bool:
    return await redis.execute_command("ACL", "GETUSER", username) is not None


async def delete_user(redis: aioredis.Redis, username: str) -> bool:
    """Remove the user from every node (which ends its connections there); True if some node had it."""
    removed = await topology.on_every_node(redis, "ACL", "DELUSER", username)
    return any(int(r) for r in removed)


async def prune_consumers(redis: aioredis.Redis, namespace: str, agent: str, idle_ms: int = PRUNE_IDLE_MS) -> int:
    """Delete the inbox's consumers that left (nothing pending, no live heartbeat, idle ``idle_ms``)."""
    keys = AgentKeys(namespace, agent)
    try:
        return int(await redis.fcall("podium_prune", 2, keys.inbox, keys.heartbeats, idle_ms))
    except ResponseError as exc:
        if "function not found" in str(exc).lower():
            await ensure_library(redis)
            return int(await redis.fcall("podium_prune", 2, keys.inbox, keys.heartbeats, idle_ms))
        raise
