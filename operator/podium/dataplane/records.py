"""Plain records the bus hands out, and helpers to decode Redis replies into them (pure, no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from podium.dataplane.messages import Task


@dataclass
class Delivery:
    task: Task
    entry_id: str
    deliveries: int  # how many times this entry has been handed to a consumer, this one included


@dataclass
class ReplicaInfo:
    replica: str
    load: float
    in_flight: int
    last_seen: float  # unix seconds, Redis clock
    lease_seconds: float


@dataclass
class Event:
    id: str  # stream entry id; orders events of one stream
    type: str
    sender: str
    payload: Any
    at: float  # unix seconds


@dataclass
class DeadLetter:
    entry_id: str
    reason: str
    raw: str
    at: float
    deliveries: int


def text(value: bytes | str | None) -> str:
    """Redis replies are bytes unless the client decodes them; the bus works with either."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def fields_of(raw: Any) -> dict[str, str]:
    """A stream entry's fields (a dict, or a flat list inside Lua replies) as str -> str."""
    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    items = list(raw or [])
    return {text(items[i]): text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def parse_replica(name: str, value: str) -> ReplicaInfo:
    load, in_flight, seen_ms, lease_ms = value.split(" ")
    return ReplicaInfo(
        replica=name,
        load=float(load),
        in_flight=int(in_flight),
        last_seen=int(seen_ms) / 1000.0,
        lease_seconds=int(lease_ms) / 1000.0,
    )


def parse_event(entry_id: str, fields: dict[str, str]) -> Event:
    try:
        payload = json.loads(fields.get("payload", "null"))
    except json.JSONDecodeError:
        payload = fields.get("payload")
    return Event(
        id=entry_id,
        type=fields.get("type", ""),
        sender=fields.get("sender", ""),
        payload=payload,
        at=float(fields.get("at", "0") or 0),
    )


def parse_dead_letter(fields: dict[str, str]) -> DeadLetter:
    return DeadLetter(
        entry_id=fields.get("entry", ""),
        reason=fields.get("reason", ""),
        raw=fields.get("raw", ""),
        at=int(fields.get("at", "0") or 0) / 1000.0,
        deliveries=int(fields.get("deliveries", "0") or 0),
    )


def stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
