"""Steps as the page shows them: one view per step of a run, from its journal entry (or its status, for steps the
journal never saw). Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from podium.engine.journal import DISPATCHED, Entry

PREVIEW_BYTES = 2048  # outputs larger than this are cut in the JSON (`podium run result` prints results whole)


def preview(value: Any, limit: int = PREVIEW_BYTES) -> Any:
    """``value`` itself when its JSON is small, else the start of its JSON text marked as cut."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text.encode()) <= limit:
        return value
    return text[:limit] + f"… ({len(text)} characters in all)"


def _state(entry: Entry) -> str:
    if entry.state == DISPATCHED:
        return "Running"
    return "Succeeded" if entry.ok else "Failed"


def step_view(entry: Entry) -> dict[str, Any]:
    """A step as the journal has it: where it ran last, how often, and how it ended."""
    result = entry.result or {}
    return {
        "step": entry.step,
        "kind": entry.kind or "task",
        "agent": entry.agent,
        "state": _state(entry),
        "attempts": entry.attempt,
        "tried": list(entry.history),
        "start": entry.started_at or None,
        "end": entry.finished_at,
        "error": entry.error or (result.get("error") if not entry.ok else None),
        "cost": float(result.get("cost") or 0.0),
        "tokens": int(result.get("tokens") or 0),
        "quality": result.get("quality"),
        "output": preview(result.get("output")) if entry.ok else None,
    }


def not_run(step: str, kind: str = "task", state: str = "Pending", error: str | None = None) -> dict[str, Any]:
    """A step the journal does not hold: not reached yet, or skipped."""
    return {
        "step": step,
        "kind": kind,
        "agent": None,
        "state": state,
        "attempts": 0,
        "tried": [],
        "start": None,
        "end": None,
        "error": error,
        "cost": 0.0,
        "tokens": 0,
        "quality": None,
        "output": None,
    }


def steps(entries: Iterable[Entry], status_tasks: Iterable[Mapping[str, Any]] = ()) -> dict[str, dict[str, Any]]:
    """Every step by name: the journal's, plus those the status shows and the journal cannot (skipped ones), and
    the status's word on how a step ended where the journal cannot tell: one the run's end caught running
    (Cancelled; the journal still says dispatched) or one its approval refused (Failed; its agent's work done)."""
    out = {e.step: step_view(e) for e in sorted(entries, key=lambda e: (e.started_at, e.step))}
    for task in status_tasks:
        name, state = task.get("name"), task.get("state")
        if name and name not in out and state in ("Skipped", "Pending"):
            out[name] = not_run(name, task.get("kind") or "task", state, task.get("error"))
            out[name]["agent"] = task.get("agent")
        elif name in out and state in ("Cancelled", "Failed") and out[name]["state"] != state:
            out[name].update(state=state, error=task.get("error") or out[name]["error"])
    return out
