"""Pure conflict logic for shared state: pick a winner, three-way merge JSON objects, tally consensus votes.

No I/O here: `podium.dataplane.state` reads the candidates from Redis, calls these functions, and writes the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ConflictResolution = Literal["timestamp", "priority", "consensus", "merge"]
STRATEGIES: tuple[ConflictResolution, ...] = ("timestamp", "priority", "consensus", "merge")

ChangeKind = Literal["set", "delete", "rollback", "resolve"]


@dataclass
class Write:
    """One writer's value for a key. `base_version` is the version the writer read before computing `value`."""

    key: str
    value: Any
    writer: str
    priority: int = 0  # higher wins under the "priority" strategy
    at: float = 0.0
    base_version: int | None = None


@dataclass
class Change:
    """One recorded change of a key (history entry and subscription event). `None` old/new means absent."""

    key: str
    old: Any
    new: Any
    version: int
    writer: str
    at: float
    kind: ChangeKind
    id: str = ""  # history stream id; usable as a snapshot id to roll back to "just after this change"


@dataclass
class Resolution:
    """How a conflict on one key was settled. `winner` is the resulting value of the key."""

    key: str
    strategy: ConflictResolution
    winner: Any
    candidates: list[Write]
    reason: str
    at: float
    conflicts: list[str] = field(default_factory=list)  # merge: paths where both sides changed a leaf differently


@dataclass
class Proposal:
    """An open consensus proposal: `value` replaces the key's value if a strict majority of the voters accepts."""

    id: str
    key: str
    value: Any
    writer: str
    at: float


def check_strategy(strategy: str) -> ConflictResolution:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown conflict resolution {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    return strategy


def same(a: Any, b: Any) -> bool:
    """JSON equality: unlike `==`, `True`, `1` and `1.0` are different values."""
    return canonical(a) == canonical(b)


def canonical(value: Any) -> str:
    """The stored form of a value: sorted keys so that equal objects compare equal as strings (also in Lua)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"shared state values must be JSON-serialisable: {e}") from e


def _timestamp_key(w: Write) -> tuple[float, str]:
    return (w.at, w.writer)


def _priority_key(w: Write) -> tuple[int, float, str]:
    return (w.priority, w.at, w.writer)


def latest(current: Write, incoming: Write) -> Write:
    """Timestamp rule: the later `at` wins; equal `at`: the greater writer name wins; full tie: incoming wins."""
    return current if _timestamp_key(current) > _timestamp_key(incoming) else incoming


def highest(current: Write, incoming: Write) -> Write:
    """Priority rule: the higher priority wins; equal priority: the timestamp rule."""
    return current if _priority_key(current) > _priority_key(incoming) else incoming


_MISSING: Any = object()


def three_way_merge(base: Any, current: Any, incoming: Any, pick_incoming: bool) -> tuple[Any, list[str]]:
    """Merge two JSON objects that both derive from `base`.

    A key changed (or added, or removed) on one side only is taken from that side; both sides making the same change
    is no conflict; both changing a nested object recurse; both changing a leaf differently is a conflict settled by
    `pick_incoming` (the caller's timestamp rule) and reported by its dotted path. `base` that is not an object (e.g.
    unknown because it aged out) counts as `{}`, so only keys present on both sides with different values conflict.
    """
    conflicts: list[str] = []
    merged = _merge_objects(base if isinstance(base, dict) else {}, current, incoming, pick_incoming, "", conflicts)
    return merged, conflicts


def _merge_objects(
    base: dict[str, Any],
    current: dict[str, Any],
    incoming: dict[str, Any],
    pick_incoming: bool,
    prefix: str,
    conflicts: list[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = list(current) + [k for k in incoming if k not in current]
    for k in keys:
        b, c, i = base.get(k, _MISSING), current.get(k, _MISSING), incoming.get(k, _MISSING)
        path = f"{prefix}{k}"
        if _eq(c, i) or _eq(i, b):
            value = c
        elif _eq(c, b):
            value = i
        elif isinstance(c, dict) and isinstance(i, dict):
            value = _merge_objects(b if isinstance(b, dict) else {}, c, i, pick_incoming, f"{path}.", conflicts)
        else:
            conflicts.append(path)
            value = i if pick_incoming else c
        if value is not _MISSING:
            out[k] = value
    return out


def _eq(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return same(a, b)


def resolve(strategy: ConflictResolution, base: Any, current: Write, incoming: Write, *, at: float) -> Resolution:
    """Settle a conflict between the stored value (`current`) and a write made from a stale version (`incoming`).

    `base` is the value both sides started from (None when unknown). Consensus cannot be settled here: it needs
    votes, see `tally`.
    """
    candidates = [current, incoming]
    if strategy == "timestamp":
        w = latest(current, incoming)
        return Resolution(current.key, strategy, w.value, candidates, f"latest write wins: {_who(w)}", at)
    if strategy == "priority":
        w = highest(current, incoming)
        return Resolution(
            current.key, strategy, w.value, candidates, f"highest priority wins: {_who(w)} priority {w.priority}", at
        )
    if strategy == "merge":
        ts = latest(current, incoming)
        if not (isinstance(current.value, dict) and isinstance(incoming.value, dict)):
            reason = f"not both JSON objects, latest write wins: {_who(ts)}"
            return Resolution(current.key, strategy, ts.value, candidates, reason, at)
        merged, conflicts = three_way_merge(base, current.value, incoming.value, ts is incoming)
        if conflicts:
            reason = f"merged; conflicting fields {', '.join(conflicts)} taken from the latest write: {_who(ts)}"
        else:
            reason = "merged without conflicts"
        return Resolution(current.key, strategy, merged, candidates, reason, at, conflicts)
    if strategy == "consensus":
        raise ValueError("consensus conflicts are settled by votes: use propose/vote/settle")
    raise ValueError(f"unknown conflict resolution {strategy!r}")


def _who(w: Write) -> str:
    return f"{w.writer} at {w.at:.6f}"


def tally(
    proposals: Sequence[Proposal], votes: Mapping[str, Mapping[str, bool]], voters: Sequence[str]
) -> tuple[Proposal | None, str]:
    """Pick the proposal accepted by a strict majority of `voters`; None keeps the current value.

    `votes` maps proposal id -> voter -> accept. Votes by anyone not in `voters` do not count. If several proposals
    reach a majority (voters may accept more than one), the one with the most accepts wins; a tie keeps the current
    value.
    """
    electorate = sorted(set(voters))
    if not electorate:
        raise ValueError("settling a consensus needs at least one voter")
    need = len(electorate) // 2 + 1
    counts = [(sum(1 for v in electorate if votes.get(p.id, {}).get(v) is True), p) for p in proposals]
    passing = sorted((c for c in counts if c[0] >= need), key=lambda c: c[0], reverse=True)
    summary = ", ".join(f"{p.id} by {p.writer}: {n}/{len(electorate)}" for n, p in counts) or "no proposals"
    if not passing:
        return None, f"no strict majority (need {need} of {len(electorate)}): {summary}; current value stays"
    if len(passing) > 1 and passing[0][0] == passing[1][0]:
        return None, f"tie between majorities: {summary}; current value stays"
    n, winner = passing[0]
    return winner, f"accepted by {n} of {len(electorate)} voters: {summary}"
