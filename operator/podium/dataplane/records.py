"""Plain records the data plane hands out, and their codecs to and from Redis values (pure, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from podium.dataplane import codec
from podium.dataplane.messages import Task
from podium.dataplane.redisutil import text


@dataclass
class Delivery:
    task: Task
    entry_id: str
    deliveries: int  # how many times this entry has been handed to a consumer, this one included


@dataclass
class ReplicaInfo:
    """One replica's heartbeat: hash ``AgentKeys.heartbeats``, replica -> ``"load in_flight last_seen_ms lease_ms"``
    and, while its backend cannot take work, ``" why"`` (written by ``podium.dataplane.scripts``' ``heartbeat``)."""

    replica: str
    last_seen: float  # unix seconds, Redis clock
    load: float = 0.0
    in_flight: int = 0
    lease_seconds: float = 0.0
    problem: str | None = None  # why it takes no work although alive (its model server unreachable), or None


@dataclass
class Event:
    id: str  # stream entry id; orders events of one stream
    type: str
    sender: str
    payload: Any
    at: float  # unix seconds
    run: str = ""  # on an agent's direct stream: the run ("ns/name") whose message this is, if any


@dataclass
class DeadLetter:
    entry_id: str
    reason: str
    raw: str
    at: float
    deliveries: int
    size: int = 0  # bytes of the task entry; ``raw`` keeps at most the first 64 KiB


def fields_of(raw: Any) -> dict[str, str]:
    """A stream entry's fields (a dict, or a flat list inside Lua replies) as str -> str."""
    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    items = list(raw or [])
    return {text(items[i]): text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def parse_replica(name: str, value: str) -> ReplicaInfo:
    """One heartbeat entry; ValueError for a malformed one."""
    parts = value.split(" ", 4)
    if len(parts) < 3:
        raise ValueError(f"heartbeat of {name!r} is not 'load in_flight last_seen_ms lease_ms': {value!r}")
    return ReplicaInfo(
        replica=name,
        last_seen=float(parts[2]) / 1000.0,
        load=float(parts[0]),
        in_flight=int(float(parts[1])),
        lease_seconds=float(parts[3]) / 1000.0 if len(parts) > 3 else 0.0,
        problem=parts[4] if len(parts) > 4 and parts[4] else None,
    )


def parse_replicas(raw: Mapping[Any, Any]) -> list[ReplicaInfo]:
    """Every well-formed entry of a heartbeats hash (HGETALL reply); a malformed one is skipped, not fatal."""
    out = []
    for replica, value in raw.items():
        try:
            out.append(parse_replica(text(replica), text(value)))
        except ValueError:
            continue
    return out


@dataclass
class Entry:
    """One step of a run's journal: hash ``OrchestrationKeys.journal(uid)``, step -> this entry as JSON."""

    step: str
    state: str  # dispatched | done
    task_id: str
    agent: str
    attempt: int
    kind: str = ""
    ok: bool | None = None
    result: dict[str, Any] | None = None  # the Result's JSON form, once done
    started_at: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    history: list[str] = field(default_factory=list)  # agents tried, in order


def encode_entry(entry: Entry) -> bytes:
    # Not asdict(): it deep-copies the result's output only for the codec to walk it again (a dispatch's hot path).
    # An Entry's __dict__ holds its fields, in their order, and nothing else.
    return codec.dumps(vars(entry), check_finite=False)


def decode_entry(raw: bytes | str) -> Entry:
    return Entry(**codec.loads(raw))


def event_fields(type: str, body: str, sender: str, at: float, run: str = "") -> dict[str, str]:
    """The stream fields of an event (``body`` is its payload, already JSON): the one writer of this format."""
    fields = {"type": type, "sender": sender, "payload": body, "at": f"{at:.6f}"}
    if run:
        fields["run"] = run
    return fields


def parse_event(entry_id: str, fields: dict[str, str]) -> Event:
    try:
        payload = codec.loads(fields.get("payload", "null"))
    except json.JSONDecodeError:
        payload = fields.get("payload")
    return Event(
        id=entry_id,
        type=fields.get("type", ""),
        sender=fields.get("sender", ""),
        payload=payload,
        at=float(fields.get("at", "0") or 0),
        run=fields.get("run", ""),
    )


def parse_dead_letter(fields: dict[str, str]) -> DeadLetter:
    return DeadLetter(
        entry_id=fields.get("entry", ""),
        reason=fields.get("reason", ""),
        raw=fields.get("raw", ""),
        at=int(fields.get("at", "0") or 0) / 1000.0,
        deliveries=int(fields.get("deliveries", "0") or 0),
        size=int(fields.get("size", "0") or 0),
    )


def stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
