"""Which servers a Redis client talks to: one server, a Sentinel-managed primary with its replicas, or a Cluster.

Most of the data plane needs no such knowledge (each call names its keys, all of one hash tag, and the client
routes it). What does: loading the function library (on every primary: functions are replicated to replicas but
not shared between the shards of a Cluster), ACL users (on every node: ACLs are not replicated at all), and the
producer's result reader (one XREAD per Cluster slot, see :mod:`podium.dataplane.results`).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

# Connection settings a replica's own client copies from a Sentinel pool (the rest are the pool's plumbing).
_COPIED = ("username", "password", "socket_timeout", "socket_connect_timeout", "db", "credential_provider")


def is_cluster(redis: Any) -> bool:
    # RedisCluster's isinstance check runs in Python (an ABC), and every dispatch asks: answered once per class.
    cls = type(redis)
    known = _CLUSTER_CLASSES.get(cls)
    if known is None:
        known = _CLUSTER_CLASSES[cls] = issubclass(cls, RedisCluster)
    return known


_CLUSTER_CLASSES: dict[type, bool] = {}


def is_sentinel(redis: Any) -> bool:
    return isinstance(getattr(redis, "connection_pool", None), SentinelConnectionPool)


def primaries(redis: Any) -> list[Any]:
    """Where a command must run once per primary: the Cluster's primary nodes, else the client itself (None)."""
    if is_cluster(redis):
        return list(redis.get_primaries())
    return [None]


async def ready(redis: Any) -> None:
    """A Cluster client knows its nodes only after its first command: make sure it does."""
    if is_cluster(redis):
        await redis.initialize()


async def on_node(redis: Any, node: Any, *args: Any) -> Any:
    """``args`` as one command on ``node`` (a Cluster node), or through the client itself when ``node`` is None."""
    if node is None:
        return await redis.execute_command(*args)
    return await redis.execute_command(*args, target_nodes=node)


async def on_every_node(redis: Any, *args: Any) -> list[Any]:
    """Run one command on every data node: each Cluster node, or a Sentinel deployment's primary and each replica
    Sentinel knows, or the one server. Replies in node order; an error on any node is raised."""
    await ready(redis)
    if is_cluster(redis):
        return [await redis.execute_command(*args, target_nodes=node) for node in redis.get_nodes()]
    replies = [await redis.execute_command(*args)]
    if is_sentinel(redis):
        pool: SentinelConnectionPool = redis.connection_pool
        settings = {k: v for k, v in pool.connection_kwargs.items() if k in _COPIED}
        for host, port, down in await _replicas(pool):
            replica = aioredis.Redis(host=host, port=port, **settings)
            try:
                replies.append(await replica.execute_command(*args))
            except (aioredis.RedisError, OSError):
                # A replica Sentinel thinks is down may be back already (it is told last): try it, and leave it to
                # the operator's resync if it is not; a healthy one that fails is an error.
                if not down:
                    raise
            finally:
                await replica.aclose()
    return replies


async def _replicas(pool: SentinelConnectionPool) -> list[tuple[str, int, bool]]:
    """Every replica the first answering Sentinel knows, as (host, port, flagged down). redis-py's
    ``discover_slaves`` leaves out those flagged down, which would miss one that has just come back."""
    for sentinel in pool.sentinel_manager.sentinels:
        try:
            states = await sentinel.sentinel_slaves(pool.service_name)
        except (aioredis.RedisError, OSError):
            continue
        return [
            (str(s["ip"]), int(s["port"]), bool(s.get("is_sdown") or s.get("is_odown") or s.get("is_disconnected")))
            for s in states
        ]
    return []
