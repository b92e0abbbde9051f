"""An agent's memory in Redis: its turns within one run, and its named memories across runs.

Both are streams under the agent's own hash tag (``AgentKeys.turns(run_uid)``, ``AgentKeys.memory(name)``), so the
agent's ACL user reaches them and nothing else does; each entry is one :class:`Turn` as JSON (field ``t``). A run's
turns are capped by count and expire a day after the last one; a named memory is capped by bytes (oldest entries
dropped after each write) and expires ``ttl_seconds`` after its last write. What goes in front of a prompt is the
agent's choice (podium.agent.memory).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.keys import AgentKeys
from podium.dataplane.records import fields_of
from podium.dataplane.redisutil import text

TURNS_TTL_SECONDS = 86400  # a run's turns outlive any sensible run; the agent cannot see when its runs end
MAX_RUN_TURNS = 64  # turns kept per run (approximately: the stream is trimmed in whole nodes)
MAX_READ = 64  # newest entries read for one prompt: far more than any token budget shows
TURN_TEXT_CHARS = 4000  # what one turn keeps of the task's content and of the answer
_FIELD = "t"


@dataclass(frozen=True)
class Turn:
    """One task the agent answered: its content as the model saw it and the answer, both as text."""

    run: str  # the run's uid ("" outside a run)
    step: str
    kind: str
    input: str
    output: str
    at: float = 0.0

    def encode(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @property
    def size(self) -> int:
        return len(self.encode().encode())


def _value(fields: Any) -> str:
    """The turn's JSON of one stream entry."""
    return fields_of(fields).get(_FIELD, "")


def decode_turn(raw: Any) -> Turn | None:
    """A stored turn, or None for an entry that is not one (skipped, not fatal)."""
    try:
        data = json.loads(text(raw))
        return Turn(
            run=str(data["run"]),
            step=str(data["step"]),
            kind=str(data["kind"]),
            input=str(data["input"]),
            output=str(data["output"]),
            at=float(data.get("at", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        return None


def clip(turn: Turn, max_bytes: int) -> Turn:
    """The turn, with its input and output shortened (input first) until its encoding fits in ``max_bytes``."""
    out = turn
    while out.size > max_bytes and (out.input or out.output):
        excess = out.size - max_bytes + 16  # room for the ellipsis
        if out.input:
            keep = max(0, len(out.input) - excess)
            out = Turn(out.run, out.step, out.kind, out.input[:keep] + "..." if keep else "", out.output, out.at)
        else:
            keep = max(0, len(out.output) - excess)
            out = Turn(out.run, out.step, out.kind, out.input, out.output[:keep] + "..." if keep else "", out.at)
    return out


def over_cap(sizes: list[tuple[str, int]], max_bytes: int) -> list[str]:
    """Entry ids to delete so that the rest fits in ``max_bytes``: the oldest. ``sizes`` is newest first."""
    total, drop = 0, []
    for entry_id, size in sizes:
        total += size
        if total > max_bytes:
            drop.append(entry_id)
    return drop


class AgentMemory:
    """The turns and named memories of one agent (what its replicas read and write)."""

    def __init__(self, redis: aioredis.Redis, namespace: str, agent: str) -> None:
        self._redis = redis
        self._keys = AgentKeys(namespace, agent)

    async def _read(self, key: str, count: int) -> list[Turn]:
        rows: Any = await self._redis.xrevrange(key, "+", "-", count=count)
        turns = [decode_turn(_value(fields)) for _, fields in rows or []]
        return [t for t in turns if t is not None]

    async def run_turns(self, run: str, count: int = MAX_READ) -> list[Turn]:
        """The agent's turns in run ``run`` (its uid), newest first."""
        return await self._read(self._keys.turns(run), count)

    async def add_run_turn(self, turn: Turn) -> None:
        key = self._keys.turns(turn.run)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {_FIELD: turn.encode()}, maxlen=MAX_RUN_TURNS, approximate=True)
            pipe.pexpire(key, TURNS_TTL_SECONDS * 1000)
            await pipe.execute()

    async def recall(self, name: str, count: int = MAX_READ) -> list[Turn]:
        """The named memory's entries, newest first."""
        return await self._read(self._keys.memory(name), count)

    async def remember(self, name: str, turn: Turn, *, ttl_seconds: int, max_bytes: int) -> None:
        """Add ``turn`` to the named memory, then drop its oldest entries beyond ``max_bytes`` and set its expiry.
        Not atomic (no script: the agent's ACL needs no new command): two replicas writing at once both trim to
        the cap, so the memory fits once the last write is done."""
        key = self._keys.memory(name)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {_FIELD: clip(turn, max_bytes).encode()})
            pipe.pexpire(key, ttl_seconds * 1000)
            pipe.xrevrange(key, "+", "-")
            rows = (await pipe.execute())[-1]
        sizes = [(text(entry_id), len(_value(fields).encode())) for entry_id, fields in rows or []]
        drop = over_cap(sizes, max_bytes)
        if drop:
            await self._redis.xdel(key, *drop)

    async def size(self, name: str) -> int:
        """Bytes of the named memory's entries (what maxBytes bounds)."""
        rows: Any = await self._redis.xrange(self._keys.memory(name), "-", "+")
        return sum(len(_value(fields).encode()) for _, fields in rows or [])
