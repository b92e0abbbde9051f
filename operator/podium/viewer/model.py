"""The JSON the viewer's API serves, built from what a run leaves behind. Pure: no I/O, no clock.

A run is read from five places, each owned elsewhere: the Orchestration object (spec and status, the operator's),
the journal (one entry per step, the engine's), the run's event stream (the engine's), the agents' result streams
(one result per attempt, the agents') and the run's shared state. :class:`RunData` holds them; :func:`run_detail`
turns them into what the page draws.

Times are Unix seconds (floats) so the page computes ages and widths without parsing dates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podium.cli.orchestrations import conversation_lines
from podium.dataplane.messages import INVALID_OUTPUT, Result
from podium.dataplane.records import Event
from podium.engine.journal import DISPATCHED, Entry
from podium.operator.conditions import parse_rfc3339
from podium.viewer.pictures import picture
from podium.viewer.steps import PREVIEW_BYTES, preview, steps

TERMINAL = ("Succeeded", "Failed")


@dataclass
class RunData:
    """Everything read about one run; the parts that could not be read are empty and named in ``warnings``."""

    obj: dict[str, Any]  # the Orchestration as the API server returns it
    entries: list[Entry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)  # this run's attempts, from its agents' result streams
    state: dict[str, Any] = field(default_factory=dict)
    kube_events: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None  # status.result, or the value status.resultRef points to
    warnings: list[str] = field(default_factory=list)


def _epoch(value: Any) -> float | None:
    """Unix seconds of an API timestamp: the status's ``...Z`` form, or the ``+00:00`` and fractional forms the
    Kubernetes client gives Events."""
    if not isinstance(value, str) or not value:
        return None
    found = parse_rfc3339(value)
    if found is not None:
        return found
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _reason(conditions: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the run is where it is: the reason of the condition that holds (Complete/Failed, else Running)."""
    by_type = {c.get("type"): c for c in conditions}
    for kind in ("Failed", "Complete", "Running"):
        cond = by_type.get(kind)
        if cond and cond.get("status") == "True":
            return str(cond.get("reason") or "") or None
    running = by_type.get("Running") or {}
    return str(running.get("reason") or "") or None


def run_summary(obj: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One row of the runs list."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    created, started, completed = (
        _epoch(meta.get("creationTimestamp")),
        _epoch(status.get("startedAt")),
        _epoch(status.get("completedAt")),
    )
    phase = status.get("phase") or "Pending"
    end = completed if phase in TERMINAL and completed is not None else now
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "strategy": spec.get("strategy"),
        "phase": phase,
        "reason": _reason(status.get("conditions") or []),
        "message": status.get("message") or "",
        "progress": status.get("progress") or "0/0",
        "tasksDone": int(status.get("tasksDone") or 0),
        "tasksTotal": int(status.get("tasksTotal") or 0),
        "cost": float(status.get("cost") or 0.0),
        "tokens": int(status.get("tokens") or 0),
        "degraded": bool(status.get("degraded")),
        "suspended": bool(spec.get("suspend")),
        "createdAt": created,
        "startedAt": started,
        "completedAt": completed,
        "ageSeconds": None if created is None else max(0.0, now - created),
        "durationSeconds": None if started is None else max(0.0, end - started),
    }


def run_list(objs: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """Newest first, as `kubectl get` users expect to find the run they just started at the top."""
    rows = [run_summary(o, now) for o in objs]
    return sorted(rows, key=lambda r: (-(r["createdAt"] or 0.0), r["name"] or ""))


# --- attempts and steps ------------------------------------------------------------------------------------


def attempt_of(result: Result, uid: str) -> tuple[str, int] | None:
    """(step, attempt) of a result of run ``uid``: task ids are ``<uid>:<step>:<attempt>`` (see RunContext)."""
    prefix = f"{uid}:"
    if not result.task_id.startswith(prefix):
        return None
    step, sep, attempt = result.task_id[len(prefix) :].rpartition(":")
    if not sep or not step or not attempt.isdigit():
        return None
    return step, int(attempt)


def attempts_by_step(results: Iterable[Result], uid: str) -> dict[str, dict[int, Result]]:
    """Each step's results by attempt number; a redelivered attempt reported twice counts once."""
    out: dict[str, dict[int, Result]] = {}
    for result in results:
        found = attempt_of(result, uid)
        if found is not None:
            out.setdefault(found[0], {}).setdefault(found[1], result)
    return out


def _bar(step: str, kind: str, agent: str, attempt: int, start: float | None, end: float | None, state: str,
         error: str | None = None, replica: str = "") -> dict[str, Any]:  # fmt: skip
    return {
        "step": step,
        "kind": kind,
        "agent": agent,
        "attempt": attempt,
        "start": start,
        "end": end,
        "state": state,
        "error": error,
        "replica": replica,
    }


def bars(entry: Entry, attempts: Mapping[int, Result]) -> list[dict[str, Any]]:
    """One bar per attempt of a step.

    Each attempt the agents reported has its own start (finish minus duration) and end. An attempt that was
    answered but not accepted (a later attempt exists, or the step failed) is ``rejected`` when its output failed
    validation (the engine's, after the agent said ok, or the agent runtime's own: ``error_type`` invalid_output)
    and ``failed`` otherwise. The journal adds what no agent reported: the
    attempt in flight now, or the last one that timed out.
    """
    kind = entry.kind or "task"
    out: list[dict[str, Any]] = []
    for number in sorted(attempts):
        r = attempts[number]
        accepted = bool(entry.ok) and number == entry.attempt
        state = "ok" if accepted else ("rejected" if r.ok or r.error_type == INVALID_OUTPUT else "failed")
        error = None if accepted else (r.error or (entry.error if number == entry.attempt else None))
        start = r.finished_at - r.duration_ms / 1000.0
        out.append(
            _bar(entry.step, kind, r.agent or entry.agent, number, start, r.finished_at, state, error, r.replica)
        )
    last_end: float | None = max((b["end"] for b in out), default=None)
    if entry.attempt not in attempts:
        if entry.state == DISPATCHED:
            out.append(
                _bar(entry.step, kind, entry.agent, entry.attempt, entry.started_at or last_end, None, "running")
            )
        elif not out or not entry.ok:
            # Nothing reported the last attempt (a timeout), or the results were trimmed: the journal's span.
            since = last_end if out else (entry.started_at or None)
            state = "ok" if entry.ok else "failed"
            out.append(_bar(entry.step, kind, entry.agent, entry.attempt, since, entry.finished_at, state, entry.error))
    return out


def timeline(entries: Iterable[Entry], results: Iterable[Result], uid: str, now: float) -> dict[str, Any]:
    """Bars of every attempt, one lane per agent, lanes in the order agents first worked."""
    by_step = attempts_by_step(results, uid)
    lanes: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        for bar in bars(entry, by_step.get(entry.step, {})):
            lanes.setdefault(bar["agent"] or "?", []).append(bar)
    starts = [b["start"] for lane in lanes.values() for b in lane if b["start"] is not None]
    ends = [b["end"] if b["end"] is not None else now for lane in lanes.values() for b in lane]
    ordered = sorted(lanes.items(), key=lambda kv: (min((b["start"] or now) for b in kv[1]), kv[0]))
    return {
        "start": min(starts, default=None),
        "end": max(ends, default=None),
        "lanes": [{"agent": agent, "bars": sorted(bs, key=lambda b: (b["start"] or now, b["step"]))}
                  for agent, bs in ordered],
    }  # fmt: skip


def spend(entries: Iterable[Entry], results: Iterable[Result], uid: str) -> list[dict[str, Any]]:
    """Cost, tokens, attempts and failed attempts per agent. Every attempt's cost counts (the budget counts it
    too); a step whose attempts the agents' streams no longer hold counts from its journal entry."""
    by_step = attempts_by_step(results, uid)
    rows: dict[str, dict[str, Any]] = {}

    def add(agent: str, cost: float, tokens: int, failed: bool) -> None:
        row = rows.setdefault(agent, {"agent": agent, "cost": 0.0, "tokens": 0, "attempts": 0, "failures": 0})
        row["cost"] += cost
        row["tokens"] += tokens
        row["attempts"] += 1
        row["failures"] += int(failed)

    for entry in entries:
        attempts = by_step.get(entry.step)
        if attempts:
            for number, r in attempts.items():
                add(r.agent or entry.agent, r.cost, r.tokens, not (entry.ok and number == entry.attempt))
        elif entry.result is not None:
            add(entry.agent, float(entry.result.get("cost") or 0.0), int(entry.result.get("tokens") or 0), not entry.ok)
    return sorted(rows.values(), key=lambda r: (-r["cost"], -r["attempts"], r["agent"]))


def history(data: RunData, limit: int = 500) -> list[dict[str, Any]]:
    """The run as it happened, by time: the engine's events, each step's exchange, the Kubernetes Events."""
    lines = conversation_lines(data.events, data.entries)
    items: list[dict[str, Any]] = [{"at": at, "source": "run", "text": text} for at, text in lines]
    for event in data.kube_events:
        count = int(event.get("count") or 1)
        # eventTime has microseconds, the older stamps whole seconds; a repeated event is as recent as its last.
        stamps = ("lastTimestamp", "eventTime") if count > 1 else ("eventTime", "lastTimestamp", "firstTimestamp")
        at = next((t for t in (_epoch(event.get(k)) for k in stamps) if t is not None), None)
        text = f"{event.get('type', 'Normal')} {event.get('reason', '')}: {event.get('message', '')}"
        items.append({"at": at or 0.0, "source": "kubernetes", "text": text + (f" (x{count})" if count > 1 else "")})
    items.sort(key=lambda i: i["at"])
    return items[-limit:]


def run_detail(data: RunData, now: float) -> dict[str, Any]:
    """Everything the run page draws."""
    summary = run_summary(data.obj, now)
    status = data.obj.get("status") or {}
    uid = str(summary["uid"] or "")
    by_step = steps(data.entries, status.get("tasks") or [])
    warnings = list(data.warnings)
    try:
        drawn = picture(data.obj.get("spec") or {}, by_step, data.result)
    except ValueError as exc:  # a spec the models refuse: the run failed InvalidSpec, the page still shows it
        drawn = {"kind": "none", "note": str(exc)}
    return {
        "run": {
            **summary,
            "conditions": status.get("conditions") or [],
            "spec": data.obj.get("spec") or {},
            "result": preview(data.result, 16 * PREVIEW_BYTES),
            "resultRef": status.get("resultRef"),
        },
        "picture": drawn,
        "timeline": timeline(data.entries, data.results, uid, now),
        "steps": list(by_step.values()),
        "spend": spend(data.entries, data.results, uid),
        "history": history(data),
        "state": {k: preview(v) for k, v in sorted(data.state.items())},
        "warnings": warnings,
        "now": now,
    }
