"""Status conditions as the Kubernetes API conventions describe them (pure helpers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def now_rfc3339(now: float | None = None) -> str:
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Cond:
    """A condition as computed this round; the transition time is filled in by :func:`merge`."""

    type: str
    status: bool | None  # None = Unknown
    reason: str
    message: str = ""

    @property
    def wire_status(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def merge(
    old: list[dict[str, Any]] | None, new: list[Cond], generation: int | None, now: float | None = None
) -> list[dict[str, Any]]:
    """New conditions in wire form; lastTransitionTime moves only when a condition's status changes."""
    previous = {c.get("type"): c for c in old or []}
    stamp = now_rfc3339(now)
    out = []
    for cond in new:
        before = previous.get(cond.type)
        changed = before is None or before.get("status") != cond.wire_status
        item: dict[str, Any] = {
            "type": cond.type,
            "status": cond.wire_status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": stamp if changed or before is None else before.get("lastTransitionTime", stamp),
        }
        if generation is not None:
            item["observedGeneration"] = generation
        out.append(item)
    return out


def find(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def false_within(condition: Mapping[str, Any] | None, now: float, seconds: float) -> bool:
    """Whether ``condition`` (wire form) turned False at most ``seconds`` before ``now``."""
    if condition is None or condition.get("status") != "False":
        return False
    since = parse_rfc3339(condition.get("lastTransitionTime"))
    return since is not None and now - since <= seconds
