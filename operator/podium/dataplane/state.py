"""Shared state of one orchestration in Redis: versioned keys, history, snapshots/rollback, conflict resolution.

Every Redis key of an orchestration shares the hash tag `{<ns>/<orch>}` so that the Lua scripts, which do every
multi-key update atomically, also work on Redis Cluster. Layout (prefix `podium:{<ns>/<orch>}:state`):

- `<prefix>`            hash  key -> canonical JSON value
- `<prefix>:ver`        hash  key -> version (monotonic per key, never reused, so stale CAS always fails)
- `<prefix>:meta`       hash  key -> JSON {writer, at, priority} of the write that produced the value
- `<prefix>:past`       hash  "<key>#<version>" -> JSON value, the last `base_window` versions: merge bases
- `<prefix>:history`    stream of changes (key, old, new, version, writer, at, kind) and snapshot markers;
                        it is also the change feed that `subscribe` reads
- `<prefix>:audit`      stream of conflict resolutions (field `resolution`, JSON)
- `<prefix>:proposals`  hash  proposal id -> JSON {key, value, writer, at}
- `<prefix>:votes`      hash  proposal id -> JSON {voter: accept}

Pure conflict logic lives in `podium.dataplane.conflicts`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from podium.dataplane.conflicts import (
    Change,
    ChangeKind,
    ConflictResolution,
    Proposal,
    Resolution,
    Write,
    canonical,
    check_strategy,
    resolve,
    same,
    tally,
)
from podium.dataplane.keys import OrchestrationKeys

__all__ = [
    "Change",
    "ConflictResolution",
    "Proposal",
    "Resolution",
    "SharedState",
    "SnapshotNotFound",
    "UnknownProposal",
    "VersionConflict",
    "Write",
]

# How many optimistic retries update/settle make under contention before giving up with VersionConflict.
MAX_RETRIES = 100
_STREAM_ID = re.compile(r"^\d+-\d+$")


class VersionConflict(Exception):
    """A compare-and-set found another version than the caller expected: re-read and retry."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"version conflict on {key!r}: expected version {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class SnapshotNotFound(ValueError):
    """Rollback to a snapshot id that never existed or was trimmed out of the history."""


class UnknownProposal(ValueError):
    """A vote for a proposal that does not exist (never opened, already settled) or belongs to another key."""


_APPLY = """
local K_STATE, K_VER, K_META, K_PAST, K_HIST, K_AUDIT, K_PROP, K_VOTES =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
-- new == '' deletes the key: no JSON encoding is ever empty, so '' safely means "absent".
local function apply(key, new, writer, at, kind, meta, maxlen, window)
  local old = redis.call('HGET', K_STATE, key) or ''
  local ver = tonumber(redis.call('HGET', K_VER, key) or '0') + 1
  if new == '' then
    redis.call('HDEL', K_STATE, key)
    redis.call('HDEL', K_META, key)
  else
    redis.call('HSET', K_STATE, key, new)
    redis.call('HSET', K_META, key, meta)
  end
  redis.call('HSET', K_VER, key, ver)
  redis.call('HSET', K_PAST, key .. '#' .. ver, new)
  if ver > tonumber(window) then redis.call('HDEL', K_PAST, key .. '#' .. (ver - tonumber(window))) end
  local id = redis.call('XADD', K_HIST, 'MAXLEN', '~', maxlen, '*', 'key', key, 'old', old, 'new', new,
    'version', ver, 'writer', writer, 'at', at, 'kind', kind)
  return {ver, id}
end
local function expire(ttl)
  if tonumber(ttl) > 0 then
    for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
"""

# ARGV: key, new, expected ('' = no CAS), writer, at, kind, meta, maxlen, window, ttl, audit ('' = none),
# audit_only ('1' = check the version and record the resolution but leave the value), proposal ids to drop...
_WRITE = (
    _APPLY
    + """
local cur = tonumber(redis.call('HGET', K_VER, ARGV[1]) or '0')
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= cur then return {0, cur, ''} end
local res = {1, cur, ''}
if ARGV[12] ~= '1' then
  local r = apply(ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
  res = {1, r[1], r[2]}
end
if ARGV[11] ~= '' then redis.call('XADD', K_AUDIT, 'MAXLEN', '~', ARGV[8], '*', 'resolution', ARGV[11]) end
for i = 13, #ARGV do
  redis.call('HDEL', K_PROP, ARGV[i])
  redis.call('HDEL', K_VOTES, ARGV[i])
end
expire(ARGV[10])
return res
"""
)

# ARGV: snapshot id, writer, at, maxlen, window, ttl, meta. Undo, per key, everything after the snapshot: the
# value to restore is the `old` of the first change after the snapshot marker.
_ROLLBACK = (
    _APPLY
    + """
if #redis.call('XRANGE', K_HIST, ARGV[1], ARGV[1]) == 0 then
  return redis.error_reply('SNAPSHOT snapshot ' .. ARGV[1] .. ' not found: never taken, or trimmed from the history')
end
local target, order = {}, {}
for _, e in ipairs(redis.call('XRANGE', K_HIST, '(' .. ARGV[1], '+')) do
  local f, h = e[2], {}
  for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
  if h['kind'] ~= 'snapshot' and target[h['key']] == nil then
    target[h['key']] = h['old']
    order[#order + 1] = h['key']
  end
end
local n = 0
for _, key in ipairs(order) do
  if (redis.call('HGET', K_STATE, key) or '') ~= target[key] then
    apply(key, target[key], ARGV[2], ARGV[3], 'rollback', ARGV[7], ARGV[4], ARGV[5])
    n = n + 1
  end
end
expire(ARGV[6])
return n
"""
)

# KEYS: proposals, votes. ARGV: proposal id, voter, accept ('1'/'0'), ttl.
_VOTE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply('PROPOSAL no open proposal ' .. ARGV[1])
end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local t = {}
if raw then t = cjson.decode(raw) end
t[ARGV[2]] = (ARGV[3] == '1')
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(t))
if tonumber(ARGV[4]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
"""


# KEYS: state, ver, meta. ARGV: key. One round trip, consistent (a MULTI pipeline costs twice as much client-side).
_READ = """
-- HGET of a missing field is false (not nil) in Lua, so the table has no holes and always has three entries.
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1]),
        redis.call('HGET', KEYS[3], ARGV[1])}
"""


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def _load(raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    text = _s(raw)
    return None if text == "" else json.loads(text)


def _meta(writer: str, at: float, priority: int) -> str:
    return json.dumps({"writer": writer, "at": at, "priority": priority})


def resolution_to_json(r: Resolution) -> str:
    return json.dumps(asdict(r), sort_keys=True)


def resolution_from_json(text: str) -> Resolution:
    d = json.loads(text)
    d["candidates"] = [Write(**c) for c in d["candidates"]]
    return Resolution(**d)


def _entries(raw: Any) -> list[tuple[str, dict[str, str]]]:
    """Stream entries from XRANGE/XREVRANGE/XREAD as (id, fields) with str everywhere (decoded or not)."""
    return [(_s(eid), {_s(k): _s(v) for k, v in (fields or {}).items()}) for eid, fields in raw or []]


def change_from_entry(entry_id: str, f: dict[str, str]) -> Change | None:
    """A history stream entry as a Change; None for snapshot markers."""
    if f.get("kind") == "snapshot":
        return None
    kind: ChangeKind = f["kind"]  # type: ignore[assignment]
    return Change(
        key=f["key"],
        old=_load(f["old"]),
        new=_load(f["new"]),
        version=int(f["version"]),
        writer=f["writer"],
        at=float(f["at"]),
        kind=kind,
        id=entry_id,
    )


class SharedState:
    """Shared key/value state of one orchestration, safe for concurrent writers in many processes."""

    def __init__(
        self,
        redis: aioredis.Redis,
        namespace: str,
        orchestration: str,
        *,
        resolution: ConflictResolution = "merge",
        history_maxlen: int = 10_000,
        ttl_seconds: int | None = None,
        base_window: int = 64,
    ) -> None:
        for label, name in (("namespace", namespace), ("orchestration", orchestration)):
            if not name or any(c in name for c in "{}/"):
                raise ValueError(f"{label} must be a non-empty name without '{{', '}}' or '/': got {name!r}")
        if history_maxlen < 1:
            raise ValueError(f"history_maxlen must be >= 1, got {history_maxlen}")
        if ttl_seconds is not None and ttl_seconds < 1:
            raise ValueError(f"ttl_seconds must be >= 1 or None, got {ttl_seconds}")
        if base_window < 1:
            raise ValueError(f"base_window must be >= 1, got {base_window}")
        self.redis = redis
        self.resolution: ConflictResolution = check_strategy(str(resolution))
        self.history_maxlen = history_maxlen
        self.ttl = ttl_seconds or 0
        self.base_window = base_window
        keys = OrchestrationKeys(namespace, orchestration).state_keys
        self.k_state = keys.values
        self.k_ver = keys.versions
        self.k_meta = keys.meta
        self.k_past = keys.past
        self.k_history = keys.history
        self.k_audit = keys.audit
        self.k_proposals = keys.proposals
        self.k_votes = keys.votes
        self._keys = keys.all()
        self._write_script = redis.register_script(_WRITE)
        self._rollback_script = redis.register_script(_ROLLBACK)
        self._vote_script = redis.register_script(_VOTE)
        self._read_script = redis.register_script(_READ)

    # ---- reads -------------------------------------------------------------------------------------------------

    async def get(self, key: str) -> tuple[Any, int]:
        """(value, version); (None, 0) for a key never written. A key removed by delete/rollback keeps its version."""
        value, version, _ = await self._read(key)
        return value, version

    async def get_all(self) -> dict[str, Any]:
        raw = await self.redis.hgetall(self.k_state)
        return {_s(k): _load(v) for k, v in raw.items()}

    async def listing(self) -> list[tuple[str, Any, int, str]]:
        """Every key that has a value, sorted: (key, value, version, writer) — what `podium run state` shows."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.k_state)
            pipe.hgetall(self.k_ver)
            pipe.hgetall(self.k_meta)
            values, versions, metas = await pipe.execute()
        versions = {_s(k): int(v) for k, v in versions.items()}
        metas = {_s(k): _load(v) or {} for k, v in metas.items()}
        return sorted(
            (_s(k), _load(v), versions.get(_s(k), 0), str(metas.get(_s(k), {}).get("writer", "")))
            for k, v in values.items()
        )

    async def _read(self, key: str) -> tuple[Any, int, dict[str, Any]]:
        raw, ver, meta = await self._read_script(keys=[self.k_state, self.k_ver, self.k_meta], args=[key])
        return _load(raw), int(ver or 0), (_load(meta) or {"writer": "", "at": 0.0, "priority": 0})

    # ---- writes ------------------------------------------------------------------------------------------------

    async def _write(
        self,
        key: str,
        encoded: str,
        *,
        expected: int | None,
        writer: str,
        at: float,
        kind: ChangeKind,
        priority: int = 0,
        audit: Resolution | None = None,
        audit_only: bool = False,
        drop_proposals: Sequence[str] = (),
    ) -> int:
        args: list[str | int | float] = [
            key,
            encoded,
            "" if expected is None else expected,
            writer,
            repr(at),
            kind,
            _meta(writer, at, priority),
            self.history_maxlen,
            self.base_window,
            self.ttl,
            "" if audit is None else resolution_to_json(audit),
            "1" if audit_only else "0",
            *drop_proposals,
        ]
        ok, version, _ = await self._write_script(keys=self._keys, args=args)
        if not ok:
            raise VersionConflict(key, expected if expected is not None else -1, int(version))
        return int(version)

    async def set(self, key: str, value: Any, *, writer: str, expected_version: int | None = None) -> int:
        """Write `value`; with `expected_version`, only if the key is still at that version (else VersionConflict).

        Returns the new version. Every write is recorded in the history and announced to subscribers.
        """
        _check_key(key)
        return await self._write(
            key, canonical(value), expected=expected_version, writer=writer, at=time.time(), kind="set"
        )

    async def delete(self, key: str, *, writer: str, expected_version: int | None = None) -> int:
        """Remove `key` (recorded as a "delete" change); its version still advances. Returns the new version."""
        _check_key(key)
        return await self._write(key, "", expected=expected_version, writer=writer, at=time.time(), kind="delete")

    async def update(
        self,
        key: str,
        value: Any,
        *,
        writer: str,
        priority: int = 0,
        base_version: int | None = None,
        voters: Sequence[str] = (),
        at: float | None = None,
        proposal_id: str | None = None,
    ) -> Resolution | int:
        """Write `value` computed from `base_version`; if someone else wrote since, resolve the conflict.

        Not stale (or no base_version): a plain write, returns the new version. Stale: the configured strategy
        decides between the stored value and this write, the outcome is recorded in the audit stream and returned.
        Under "consensus" a stale write opens a proposal (see `propose`) and the current value stays until `settle`.
        `at` is when the writer produced the value (default: now); timestamp rules compare it. `proposal_id` names
        the consensus proposal (default: a random id); proposing again under the same id replaces it, so a retried
        write does not open a second proposal.
        """
        _check_key(key)
        encoded = canonical(value)
        incoming = Write(key, value, writer, priority, time.time() if at is None else at, base_version)
        for _ in range(MAX_RETRIES):
            cur_value, cur_ver, meta = await self._read(key)
            if base_version is None or base_version == cur_ver:
                try:
                    return await self._write(
                        key,
                        encoded,
                        expected=cur_ver,
                        writer=writer,
                        at=incoming.at,
                        kind="set",
                        priority=priority,
                    )
                except VersionConflict:
                    continue
            current = Write(key, cur_value, meta["writer"], int(meta["priority"]), float(meta["at"]), cur_ver)
            if self.resolution == "consensus":
                pid = await self.propose(key, value, writer=writer, proposal_id=proposal_id)
                who = ", ".join(voters) if voters else "the voters"
                reason = f"stale write by {writer}: proposal {pid} awaits a majority of {who}; current value stays"
                return Resolution(key, "consensus", cur_value, [current, incoming], reason, time.time())
            base = await self._past(key, base_version)
            res = resolve(self.resolution, base, current, incoming, at=time.time())
            changed = not same(res.winner, cur_value)
            winner = incoming if same(res.winner, incoming.value) else current
            try:
                await self._write(
                    key,
                    canonical(res.winner),
                    expected=cur_ver,
                    writer=writer,
                    at=max(current.at, incoming.at),
                    kind="resolve",
                    priority=max(winner.priority, priority) if res.strategy == "merge" else winner.priority,
                    audit=res,
                    audit_only=not changed,
                )
            except VersionConflict:
                continue
            return res
        raise VersionConflict(key, base_version if base_version is not None else -1, (await self.get(key))[1])

    async def _past(self, key: str, version: int | None) -> Any:
        if not version:
            return None
        return _load(await self.redis.hget(self.k_past, f"{key}#{version}"))

    # ---- consensus ---------------------------------------------------------------------------------------------

    async def propose(self, key: str, value: Any, *, writer: str, proposal_id: str | None = None) -> str:
        """Open a proposal to set `key` to `value`; returns its id for `vote` (`proposal_id`, or a random one)."""
        _check_key(key)
        pid = proposal_id or uuid.uuid4().hex[:16]
        doc = {"key": key, "value": value, "writer": writer, "at": time.time()}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.k_proposals, pid, canonical(doc))
            if self.ttl:
                pipe.expire(self.k_proposals, self.ttl)
            await pipe.execute()
        return pid

    async def vote(self, key: str, proposal_id: str, *, voter: str, accept: bool) -> None:
        """Record `voter`'s vote on an open proposal of `key`; a later vote by the same voter replaces the earlier."""
        raw = await self.redis.hget(self.k_proposals, proposal_id)
        if raw is None:
            raise UnknownProposal(f"no open proposal {proposal_id!r} (never opened, or already settled)")
        if json.loads(_s(raw))["key"] != key:
            raise UnknownProposal(f"proposal {proposal_id!r} is not about key {key!r}")
        try:
            await self._vote_script(
                keys=[self.k_proposals, self.k_votes], args=[proposal_id, voter, "1" if accept else "0", self.ttl]
            )
        except ResponseError as e:
            if "PROPOSAL" in str(e):
                raise UnknownProposal(f"proposal {proposal_id!r} was settled before the vote arrived") from e
            raise

    async def settle(self, key: str, *, voters: Sequence[str]) -> Resolution:
        """Close every open proposal of `key`: one accepted by a strict majority of `voters` becomes the value.

        No majority (or a tie between majorities) keeps the current value. The outcome goes to the audit stream.
        """
        _check_key(key)
        for _ in range(MAX_RETRIES):
            proposals = await self._open_proposals(key)
            votes = await self._votes([p.id for p in proposals])
            cur_value, cur_ver, meta = await self._read(key)
            winner, reason = tally(proposals, votes, voters)
            current = Write(key, cur_value, meta["writer"], int(meta["priority"]), float(meta["at"]), cur_ver)
            candidates = [current] + [Write(key, p.value, p.writer, 0, p.at, None) for p in proposals]
            value = winner.value if winner is not None else cur_value
            res = Resolution(key, "consensus", value, candidates, reason, time.time())
            changed = winner is not None and not same(winner.value, cur_value)
            try:
                await self._write(
                    key,
                    canonical(value),
                    expected=cur_ver,
                    writer=winner.writer if winner is not None else current.writer,
                    at=winner.at if winner is not None else current.at,
                    kind="resolve",
                    audit=res,
                    audit_only=not changed,
                    drop_proposals=[p.id for p in proposals],
                )
            except VersionConflict:
                continue
            return res
        raise VersionConflict(key, -1, (await self.get(key))[1])

    async def proposals(self, key: str) -> list[Proposal]:
        """The open proposals of `key`, oldest first (what voters are asked about)."""
        return await self._open_proposals(key)

    async def _open_proposals(self, key: str) -> list[Proposal]:
        raw = await self.redis.hgetall(self.k_proposals)
        out = []
        for pid, doc in raw.items():
            d = json.loads(_s(doc))
            if d["key"] == key:
                out.append(Proposal(_s(pid), key, d["value"], d["writer"], float(d["at"])))
        return sorted(out, key=lambda p: (p.at, p.id))

    async def _votes(self, ids: list[str]) -> dict[str, dict[str, bool]]:
        if not ids:
            return {}
        raws = await self.redis.hmget(self.k_votes, ids)
        return {pid: {k: v is True for k, v in (_load(r) or {}).items()} for pid, r in zip(ids, raws, strict=True)}

    # ---- history, snapshots, audit -----------------------------------------------------------------------------

    async def history(self, key: str | None = None, limit: int = 100) -> list[Change]:
        """The last `limit` changes (of `key`, or of every key), oldest first."""
        if limit < 1:
            return []
        out: list[Change] = []
        upper = "+"
        page = max(limit, 100)
        while len(out) < limit:
            entries = _entries(await self.redis.xrevrange(self.k_history, max=upper, min="-", count=page))
            for entry_id, fields in entries:
                c = change_from_entry(entry_id, fields)
                if c is not None and (key is None or c.key == key):
                    out.append(c)
                    if len(out) == limit:
                        break
            if len(entries) < page:
                break
            upper = "(" + entries[-1][0]
        out.reverse()
        return out

    async def snapshots(self, limit: int = 100) -> list[tuple[str, float]]:
        """The last `limit` snapshot markers still in the history, oldest first, as (id, unix time)."""
        out: list[tuple[str, float]] = []
        upper = "+"
        while len(out) < limit:
            entries = _entries(await self.redis.xrevrange(self.k_history, max=upper, min="-", count=500))
            out += [(i, float(f.get("at", "0"))) for i, f in entries if f.get("kind") == "snapshot"]
            if len(entries) < 500:
                break
            upper = "(" + entries[-1][0]
        return list(reversed(out[:limit]))

    async def snapshot(self) -> str:
        """Mark the current history position; `rollback(id)` restores every key to its value at this point."""
        sid = await self.redis.xadd(
            self.k_history, {"kind": "snapshot", "at": repr(time.time())}, maxlen=self.history_maxlen, approximate=True
        )
        return _s(sid)

    async def rollback(self, snapshot_id: str, *, writer: str) -> int:
        """Atomically restore every key to its value at `snapshot_id`; each restored key is a "rollback" change.

        Keys created after the snapshot are removed. Returns how many keys changed. Raises SnapshotNotFound if the
        history no longer reaches back.
        """
        if not _STREAM_ID.match(snapshot_id):
            raise SnapshotNotFound(f"{snapshot_id!r} is not a snapshot id (expected '<ms>-<seq>' from snapshot())")
        now = time.time()
        try:
            restored = await self._rollback_script(
                keys=self._keys,
                args=[snapshot_id, writer, repr(now), self.history_maxlen, self.base_window, self.ttl,
                      _meta(writer, now, 0)],
            )  # fmt: skip
        except ResponseError as e:
            if "SNAPSHOT" in str(e):
                raise SnapshotNotFound(str(e).removeprefix("SNAPSHOT ")) from e
            raise
        return int(restored)

    async def audit(self, limit: int = 100) -> list[Resolution]:
        """The last `limit` conflict resolutions, oldest first."""
        entries = _entries(await self.redis.xrevrange(self.k_audit, count=limit))
        return [resolution_from_json(f["resolution"]) for _, f in reversed(entries)]

    # ---- notifications -----------------------------------------------------------------------------------------

    async def subscribe(self, since: str | None = None, *, block_ms: int = 1000) -> AsyncIterator[Change]:
        """Yield every change (sets, deletes, rollbacks, resolutions) in order, forever.

        Starts after `since` (a snapshot id or Change.id) if given, else at the end of the history at the first
        iteration. Reads the history stream, so a slow subscriber misses nothing unless the history is trimmed.
        """
        if since is None:
            last = _entries(await self.redis.xrevrange(self.k_history, count=1))
            cursor = last[0][0] if last else "0-0"
        else:
            cursor = since
        while True:
            reply: Any = await self.redis.xread({self.k_history: cursor}, count=100, block=block_ms)
            for _, raw in reply or []:
                for entry_id, fields in _entries(raw):
                    cursor = entry_id
                    c = change_from_entry(entry_id, fields)
                    if c is not None:
                        yield c

    async def delete_all(self) -> None:
        """Drop the orchestration's whole state, history, audit and proposals."""
        await self.redis.delete(*self._keys)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"state keys must be non-empty strings, got {key!r}")
