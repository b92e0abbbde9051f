"""Moving keys of the first layout, one tag ``podium:{<ns>/<name>}`` for agents and orchestrations alike, to the
per-kind key spaces ``podium:{<ns>/agent/<name>}`` and ``podium:{<ns>/run/<name>}``.

The operator runs :func:`migrate` when it starts; a marker key (:data:`LAYOUT_KEY`) records that it ran, so later
starts cost one GET. Which kind a legacy key belongs to follows from its suffix; ``result:<id>`` is both an agent's
stored result (always written with a TTL) and a run's stored result (never with one), so the TTL decides. Results
are sealed on the way (:mod:`podium.dataplane.library`): producers accept nothing else. Dedupe markers
(``done:<id>:<attempt>``) are dropped: a sealed result key is its attempt's marker now. A key whose new name is
already taken is left where it is and counted. See docs/data-plane.md, "Upgrading".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane import topology
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.library import Library, result_message, seal
from podium.dataplane.redisutil import text

LAYOUT_KEY = "podium:layout"
LAYOUT = "2"  # per-kind key spaces

_LEGACY = re.compile(r"^podium:\{([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)\}:(.+)$", re.S)
AGENT_SUFFIXES = frozenset({"inbox", "results", "hb", "dlq", "direct", "cancelled", "stats", "recent", "breaker"})
RUN_SUFFIXES = frozenset({"events", "budget", "state"})


@dataclass
class Migration:
    moved: int = 0
    sealed: int = 0
    dropped: int = 0  # dedupe markers: the sealed result key is the marker now
    kept: list[str] = field(default_factory=list)  # legacy keys left in place: their new name was taken


def new_name(key: str, has_ttl: bool) -> str | None:
    """The per-kind name of a legacy key, or None when ``key`` is not one (pure)."""
    found = _LEGACY.match(key)
    if found is None:
        return None
    namespace, name, suffix = found.groups()
    agent, run = AgentKeys(namespace, name).prefix, OrchestrationKeys(namespace, name).prefix
    if suffix in AGENT_SUFFIXES or suffix.startswith("done:"):
        return agent + suffix
    if suffix in RUN_SUFFIXES or suffix.startswith(("journal:", "state:")):
        return run + suffix
    if suffix.startswith("result:"):
        return (agent if has_ttl else run) + suffix
    return None


async def _move(redis: aioredis.Redis, old: str, new: str, library: Library, out: Migration) -> None:
    agent_result = new.startswith("podium:{") and "/agent/" in new.split("}")[0]
    suffix = new.split("}:", 1)[1]
    if agent_result and suffix.startswith("result:"):
        raw = await redis.get(old)
        if raw is not None:
            value = raw if isinstance(raw, bytes) else str(raw).encode()
            task_id = suffix.removeprefix("result:")
            sealed = seal(library.secret, result_message(task_id, value)).encode() + value
            ttl = await redis.pttl(old)
            if not await redis.set(new, sealed, nx=True, px=ttl if ttl > 0 else None):
                out.kept.append(old)
                return
            await redis.delete(old)
            out.moved += 1
            out.sealed += 1
        return
    if suffix.startswith("done:"):
        await redis.delete(old)
        out.dropped += 1
        return
    if suffix == "results":
        await _move_results(redis, old, new, library, out)
        return
    if await redis.renamenx(old, new):
        out.moved += 1
    else:
        out.kept.append(old)


async def _move_results(redis: aioredis.Redis, old: str, new: str, library: Library, out: Migration) -> None:
    """A result stream is copied entry by entry (same ids) with each result's seal, then the old one deleted."""
    if await redis.exists(new):
        out.kept.append(old)
        return
    start = "-"
    while True:
        rows: Any = await redis.xrange(old, min=start, count=500)
        if not rows:
            break
        async with redis.pipeline(transaction=False) as pipe:
            for entry_id, fields in rows:
                task_id, body = text(fields.get(b"i", b"")), fields.get(b"r", b"")
                sealed = seal(library.secret, result_message(task_id, body))
                pipe.xadd(new, {"i": task_id, "r": body, "s": sealed}, id=entry_id)
            await pipe.execute()
        start = "(" + text(rows[-1][0])
    await redis.delete(old)
    out.moved += 1


async def migrate(redis: aioredis.Redis, library: Library, *, force: bool = False) -> Migration | None:
    """Move every legacy key (once: None when the marker says it ran, unless ``force``)."""
    if not force and text(await redis.get(LAYOUT_KEY)) == LAYOUT:
        return None
    out = Migration()
    if topology.is_cluster(redis):  # the first layout never ran on a Cluster: nothing to move (nor movable: slots)
        await redis.set(LAYOUT_KEY, LAYOUT)
        return out
    async for raw in redis.scan_iter(match="podium:{*}:*", count=500):
        key = text(raw)
        found = _LEGACY.match(key)
        if found is None:
            continue
        ttl = await redis.pttl(key)
        target = new_name(key, has_ttl=ttl > 0)
        if target is not None:
            await _move(redis, key, target, library, out)
    await redis.set(LAYOUT_KEY, LAYOUT)
    return out
