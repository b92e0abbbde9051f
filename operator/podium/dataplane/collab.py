"""The collaboration shapes that travel with tasks and results (pure, no I/O).

A task's ``context`` tells the agent what it would otherwise not know: the values (with versions) of the run's
shared-state keys it reads, how those keys changed (writes, resolutions, rollbacks) since its previous task of the
run, and the messages of the types it subscribed to. A result's ``state_updates`` and ``messages`` are what the
answer asks the engine to do: write keys of the shared state (through the run's conflict resolution) and publish
messages. The engine builds contexts and applies effects; the agent runtime reads contexts and writes effects, so
both sides use this one module.

Wire form of a context (every part optional)::

    {"blackboard": {"values": {"plan": {"value": {...}, "version": 3}},
                    "changes": [{"key": "plan", "kind": "rollback", "old": ..., "new": ..., "version": 4,
                                 "writer": "user:alice", "at": 1700000000.0}],
                    "changesDropped": 0},
     "messages": [{"id": "1700000000000-0", "type": "finding", "sender": "w1", "payload": {...}, "at": ...}],
     "messagesDropped": 0}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podium.api.collab import STATE_KEY_PATTERN

# An answer may ask for at most this many writes and messages; more is refused as a malformed answer.
MAX_STATE_UPDATES = 32
MAX_MESSAGES = 16
# A context carries at most this many changes and messages (the newest); the rest is counted as dropped.
CONTEXT_CHANGES = 50
CONTEXT_MESSAGES = 20

_KEY = re.compile(STATE_KEY_PATTERN)
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,252}$")


class InvalidEffects(ValueError):
    """An answer's stateUpdates or messages are malformed; the message names the entry and the problem."""


@dataclass(frozen=True)
class StateUpdate:
    """One write an answer asks for. ``base_version`` is the version the writer read: a write from an older
    version is a conflict, settled by the run's conflictResolution. None: a blind write (last writer wins)."""

    key: str
    value: Any
    base_version: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "baseVersion": self.base_version}


@dataclass(frozen=True)
class OutMessage:
    """One message an answer publishes to the run: routed to the agents subscribed to its type."""

    type: str
    payload: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "payload": self.payload}


def context_versions(context: Mapping[str, Any] | None) -> dict[str, int]:
    """The version of each key the task's context showed: the base of the agent's writes to it."""
    values = ((context or {}).get("blackboard") or {}).get("values") or {}
    return {k: int(v.get("version", 0)) for k, v in values.items() if isinstance(v, Mapping)}


def parse_state_updates(raw: Any, versions: Mapping[str, int] | None = None) -> list[StateUpdate]:
    """An answer's ``stateUpdates``: a list of ``{key, value, baseVersion?}`` or a mapping ``{key: value}``.

    A missing baseVersion is the version the task's context showed for the key (``versions``), so a plain
    ``{"plan": {...}}`` from an agent that read ``plan`` is a write from what it read; a key it did not read is a
    blind write.
    """
    if raw is None:
        return []
    seen = versions or {}
    if isinstance(raw, Mapping):
        raw = [{"key": k, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise InvalidEffects(f"stateUpdates must be a list or an object, got {type(raw).__name__}")
    if len(raw) > MAX_STATE_UPDATES:
        raise InvalidEffects(f"stateUpdates has {len(raw)} entries, at most {MAX_STATE_UPDATES} allowed")
    out = []
    for i, item in enumerate(raw):
        where = f"stateUpdates[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidEffects(f"{where} must be an object {{key, value, baseVersion?}}, got {type(item).__name__}")
        unknown = set(item) - {"key", "value", "baseVersion"}
        if unknown:
            raise InvalidEffects(f"{where} has unknown field(s) {', '.join(sorted(unknown))}")
        key = item.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            raise InvalidEffects(f"{where}.key {key!r} is not a state key (letters, digits, '.', '_', '/', ':', '-')")
        if "value" not in item:
            raise InvalidEffects(f"{where} has no value")
        base = item.get("baseVersion", seen.get(key))
        if base is not None and (isinstance(base, bool) or not isinstance(base, int) or base < 0):
            raise InvalidEffects(f"{where}.baseVersion must be an integer >= 0, got {base!r}")
        out.append(StateUpdate(key, item["value"], base))
    return out


def parse_messages(raw: Any) -> list[OutMessage]:
    """An answer's ``messages``: a list of ``{type, payload?}``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidEffects(f"messages must be a list, got {type(raw).__name__}")
    if len(raw) > MAX_MESSAGES:
        raise InvalidEffects(f"messages has {len(raw)} entries, at most {MAX_MESSAGES} allowed")
    out = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidEffects(f"{where} must be an object {{type, payload}}, got {type(item).__name__}")
        unknown = set(item) - {"type", "payload"}
        if unknown:
            raise InvalidEffects(f"{where} has unknown field(s) {', '.join(sorted(unknown))}")
        kind = item.get("type")
        if not isinstance(kind, str) or not _TYPE.match(kind):
            raise InvalidEffects(f"{where}.type {kind!r} is not a message type (letters, digits, '.', '_', '/', '-')")
        out.append(OutMessage(kind, item.get("payload")))
    return out


def matches(subscriptions: list[str] | tuple[str, ...], message_type: str) -> bool:
    """Whether a message type is one of the subscriptions (exact, a prefix ending in ``*``, or ``*``)."""
    for sub in subscriptions:
        if sub == "*" or sub == message_type or (sub.endswith("*") and message_type.startswith(sub[:-1])):
            return True
    return False
