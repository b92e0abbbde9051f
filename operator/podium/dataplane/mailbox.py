"""What each agent of a run has not been told yet: messages of the types it subscribed to, and changes of the
shared-state keys it reads. Taken atomically with each task the engine sends it.

One Lua script per task reads, after the agent's cursors in hash ``OrchestrationKeys.cursors(uid)``, the run's
event stream (messages from the strategy, agents and people) and the shared state's history (writes,
resolutions, rollbacks), keeps what matches, reads the values of the keys, and moves the cursors to the newest
entries: two tasks of one agent sent at once never get the same message twice. Everything lives under the run's
hash tag, so the script stays legal on Redis Cluster.

Cursor fields: ``m:<agent>`` (last event id considered), ``s:<agent>`` (last history id considered), ``router``
(last event the engine's router handled, see ``podium.engine.messaging``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.collab import CONTEXT_CHANGES, CONTEXT_MESSAGES
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.messages import encode_json
from podium.dataplane.records import Event, event_fields, fields_of, parse_event
from podium.dataplane.redisutil import text

# Entries one take looks at per stream (newest first); older unseen ones count as dropped.
SCAN_LIMIT = 5000

# KEYS: events, history, values, versions, cursors.
# ARGV: agent, consume ('1'/'0'), max messages, max changes, scan limit, #types, types..., #keys, keys...
_TAKE = """
local agent, consume = ARGV[1], ARGV[2] == '1'
local max_m, max_c, scan = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local nt = tonumber(ARGV[6])
local types = {}
for i = 1, nt do types[i] = ARGV[6 + i] end
local nk = tonumber(ARGV[7 + nt])
local keys, keyset, all = {}, {}, false
for i = 1, nk do
  local k = ARGV[7 + nt + i]
  if k == '*' then all = true else keys[#keys + 1] = k; keyset[k] = true end
end
local function get(f, name)
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return nil
end
local function wanted(t)
  for _, s in ipairs(types) do
    if s == '*' or s == t then return true end
    if string.sub(s, -1) == '*' and string.sub(t, 1, #s - 1) == string.sub(s, 1, #s - 1) then return true end
  end
  return false
end
local msgs, mdrop = {}, 0
if nt > 0 then
  local cursor = redis.call('HGET', KEYS[5], 'm:' .. agent) or '0-0'
  local rows = redis.call('XREVRANGE', KEYS[1], '+', '(' .. cursor, 'COUNT', scan)
  for _, e in ipairs(rows) do
    if get(e[2], 'sender') ~= agent and wanted(get(e[2], 'type') or '') then
      if #msgs < max_m then msgs[#msgs + 1] = e else mdrop = mdrop + 1 end
    end
  end
  if consume and #rows > 0 then redis.call('HSET', KEYS[5], 'm:' .. agent, rows[1][1]) end
end
local changes, cdrop, values = {}, 0, {}
if nk > 0 then
  local cursor = redis.call('HGET', KEYS[5], 's:' .. agent)
  local newest = nil
  if cursor then
    local rows = redis.call('XREVRANGE', KEYS[2], '+', '(' .. cursor, 'COUNT', scan)
    for _, e in ipairs(rows) do
      local kind, key = get(e[2], 'kind'), get(e[2], 'key')
      if kind ~= 'snapshot' and (all or keyset[key]) then
        if #changes < max_c then changes[#changes + 1] = e else cdrop = cdrop + 1 end
      end
    end
    if #rows > 0 then newest = rows[1][1] end
  else
    -- The agent's first task of the run: the values tell it everything; changes count from here on.
    local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
    newest = (last[1] and last[1][1]) or '0-0'
  end
  if consume and newest then redis.call('HSET', KEYS[5], 's:' .. agent, newest) end
  if all then
    local flat = redis.call('HGETALL', KEYS[3])
    for i = 1, #flat, 2 do keys[#keys + 1] = flat[i] end
  end
  for _, k in ipairs(keys) do
    values[#values + 1] = k
    values[#values + 1] = redis.call('HGET', KEYS[3], k) or ''
    values[#values + 1] = redis.call('HGET', KEYS[4], k) or '0'
  end
end
return {msgs, mdrop, changes, cdrop, values}
"""


@dataclass
class Told:
    """What one take found for an agent: the values of its keys, their changes and its messages, oldest first."""

    values: dict[str, tuple[Any, int]] = field(default_factory=dict)  # key -> (value or None, version)
    changes: list[dict[str, Any]] = field(default_factory=list)
    changes_dropped: int = 0
    messages: list[Event] = field(default_factory=list)
    messages_dropped: int = 0

    def to_context(self, *, messages: bool = True) -> dict[str, Any] | None:
        """The task context's wire form (``podium.dataplane.collab``); None when there is nothing to tell."""
        out: dict[str, Any] = {}
        if self.values or self.changes:
            board: dict[str, Any] = {
                "values": {k: {"value": v, "version": ver} for k, (v, ver) in sorted(self.values.items())}
            }
            if self.changes or self.changes_dropped:
                board["changes"] = self.changes
                board["changesDropped"] = self.changes_dropped
            out["blackboard"] = board
        if messages and (self.messages or self.messages_dropped):
            out["messages"] = [message_wire(m) for m in self.messages]
            out["messagesDropped"] = self.messages_dropped
        return out or None


def message_wire(event: Event) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "sender": event.sender, "payload": event.payload, "at": event.at}


def _load(raw: str) -> Any:
    return None if raw == "" else json.loads(raw)


def _change(entry_id: str, f: dict[str, str]) -> dict[str, Any]:
    return {
        "key": f.get("key", ""),
        "kind": f.get("kind", ""),
        "old": _load(f.get("old", "")),
        "new": _load(f.get("new", "")),
        "version": int(f.get("version", "0") or 0),
        "writer": f.get("writer", ""),
        "at": float(f.get("at", "0") or 0),
        "id": entry_id,
    }


class Mailbox:
    """The cursors of one run (``uid``) and what they have not reached yet, per agent."""

    def __init__(self, redis: aioredis.Redis, namespace: str, name: str, uid: str) -> None:
        self.redis = redis
        self.namespace = namespace
        self.orchestration = f"{namespace}/{name}"
        keys = OrchestrationKeys(namespace, name)
        state = keys.state_keys
        self._keys = [keys.events, state.history, state.values, state.versions, keys.cursors(uid)]
        self._cursors = keys.cursors(uid)
        self._take = redis.register_script(_TAKE)

    async def take(self, agent: str, types: Sequence[str], keys: Sequence[str], *, consume: bool = True) -> Told:
        """What ``agent`` has not been told: messages of ``types`` (not its own) and changes of ``keys`` (``*``:
        all), with the keys' values; ``consume`` moves its cursors past them."""
        types, keys = list(dict.fromkeys(types)), list(dict.fromkeys(keys))
        args: list[Any] = [agent, "1" if consume else "0", CONTEXT_MESSAGES, CONTEXT_CHANGES, SCAN_LIMIT]
        args += [len(types), *types, len(keys), *keys]
        msgs, mdrop, changes, cdrop, values = await self._take(keys=self._keys, args=args)
        told = Told(changes_dropped=int(cdrop), messages_dropped=int(mdrop))
        told.messages = [parse_event(text(i), fields_of(f)) for i, f in reversed(msgs)]
        told.changes = [_change(text(i), fields_of(f)) for i, f in reversed(changes)]
        flat = [text(v) for v in values]
        for i in range(0, len(flat), 3):
            told.values[flat[i]] = (_load(flat[i + 1]), int(flat[i + 2] or 0))
        return told

    async def record_delivery(self, agent: str, messages: Sequence[Event], *, maxlen: int = 10_000) -> None:
        """Copy delivered messages to the agent's direct stream: its own message history, marked with the run."""
        if not messages:
            return
        key = AgentKeys(self.namespace, agent).direct
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in messages:
                fields = event_fields(m.type, encode_json(m.payload), m.sender, m.at, self.orchestration)
                pipe.xadd(key, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()

    async def follow(self, after: str, block_ms: int | None) -> list[Event]:
        """The run's messages after ``after`` (a stream id), waiting up to ``block_ms`` for the first (None: no
        wait)."""
        reply: Any = await self.redis.xread({self._keys[0]: after}, count=500, block=block_ms)
        rows = reply.items() if isinstance(reply, dict) else (reply or [])
        return [parse_event(text(i), fields_of(f)) for _stream, entries in rows for i, f in entries]

    async def router_cursor(self) -> str | None:
        raw = await self.redis.hget(self._cursors, "router")
        return None if raw is None else text(raw)

    async def set_router_cursor(self, entry_id: str) -> None:
        await self.redis.hset(self._cursors, "router", entry_id)
