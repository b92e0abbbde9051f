"""What an Orchestration's status says, from the engine's progress and outcome (pure), and a throttled writer.

Conditions (each with observedGeneration):

* ``Running``: True while tasks are being dispatched; False with reason Pending, Suspended, Succeeded or Failed.
* ``Suspended``: True while ``spec.suspend`` holds dispatch back.
* ``AwaitingApproval``: True while a step's output or the final result waits for a person (status.approvals).
* ``Complete`` / ``Failed``: set once the run ended; the reason is the engine's (Completed, Degraded,
  BudgetExceeded, TaskFailed, Cancelled, InvalidSpec, NoAgents, ...).
* ``Degraded``: True when optional work was lost and the run went on without it.
* ``Waiting``: True while the run waits for an agent to come up (autoscaled at zero, starting), naming it.
* ``BudgetExceeded``: True when a hard limit (timeout, maxTasks, maxCost, maxTokens) stopped the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from podium.dataplane.runs import result_ref
from podium.engine.progress import Progress, TaskRecord
from podium.engine.runner import RunOutcome
from podium.operator.conditions import Cond, merge, now_rfc3339
from podium.operator.kube import describe_error

MAX_TASKS = 100  # the CRD's bound on status.tasks
MAX_ERROR = 4096
MAX_MESSAGE = 2048
INLINE_RESULT_BYTES = 32 * 1024  # larger results go to Redis, referenced by status.resultRef

PENDING, RUNNING, SUCCEEDED, FAILED, SUSPENDED = "Pending", "Running", "Succeeded", "Failed", "Suspended"
AWAITING = "AwaitingApproval"
TERMINAL = (SUCCEEDED, FAILED)
ACTIVE = (RUNNING, SUSPENDED, AWAITING)  # a run between its start and its end: an operator restart resumes it

log = logging.getLogger(__name__)


def _stamp(value: float | None) -> str | None:
    return None if value is None else now_rfc3339(value)


def task_status(record: TaskRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.task_id or record.step,
        "name": record.step,
        "kind": record.kind,
        "agent": record.agent,
        "state": record.state,
        "attempts": record.attempts,
        "startedAt": _stamp(record.started_at),
        "completedAt": _stamp(record.finished_at),
    }
    if record.error:
        out["error"] = record.error[:MAX_ERROR]
    return {k: v for k, v in out.items() if v is not None}


def recent_tasks(records: Sequence[TaskRecord], limit: int = MAX_TASKS) -> list[dict[str, Any]]:
    """The ``limit`` most recently started tasks, oldest first; unstarted (pending/skipped) ones count as newest."""
    order = sorted(range(len(records)), key=lambda i: (records[i].started_at or float("inf"), i))
    return [task_status(records[i]) for i in order[-limit:]]


def progress_fields(progress: Progress) -> dict[str, Any]:
    return {
        "progress": progress.text,
        "tasksDone": progress.done,
        "tasksTotal": progress.total,
        "tasks": recent_tasks(progress.tasks),
        "cost": round(progress.cost, 6),
        "tokens": progress.tokens,
    }


def conditions(
    phase: str,
    reason: str,
    message: str,
    *,
    degraded: bool = False,
    waiting: Sequence[str] = (),
    ignored: str = "",
) -> list[Cond]:
    """The conditions of a phase; ``reason``/``message`` explain it (the engine's reason once finished);
    ``waiting`` says which agents the run waits for to come up, ``ignored`` why the spec as it is now is not the
    one the run goes on with."""
    # While Pending, the reason is what the run waits for (TeamNotFound, AgentNotFound, NoAgents).
    why = reason if phase == PENDING and reason else ("Running" if phase == RUNNING else phase)
    running = Cond("Running", phase == RUNNING, why, message)
    suspended = Cond(
        "Suspended",
        phase == SUSPENDED,
        "Suspended" if phase == SUSPENDED else "NotSuspended",
        message if phase == SUSPENDED else "",
    )
    awaiting = Cond(
        "AwaitingApproval",
        phase == AWAITING,
        "ApprovalRequired" if phase == AWAITING else "NoApprovalPending",
        message if phase == AWAITING else "",
    )
    out = [running, suspended, awaiting]
    if phase in TERMINAL:
        out.append(Cond("Complete", phase == SUCCEEDED, reason, message))
        out.append(Cond("Failed", phase == FAILED, reason, message))
        out.append(Cond("BudgetExceeded", reason == "BudgetExceeded", reason, message))
    out.append(Cond("Degraded", degraded, "Degraded" if degraded else "NotDegraded", message if degraded else ""))
    out.append(Cond("Waiting", bool(waiting), "AgentNotReady" if waiting else "NotWaiting", "; ".join(waiting)))
    if ignored:
        out.append(Cond("SpecIgnored", True, "RunStarted", ignored))
    return out


def phase_fields(
    phase: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    old_conditions: list[dict[str, Any]] | None,
    degraded: bool = False,
    waiting: Sequence[str] = (),
    ignored: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    current = conditions(phase, reason, message, degraded=degraded, waiting=waiting, ignored=ignored)
    return {
        "phase": phase,
        "message": message[:MAX_MESSAGE],
        "degraded": degraded,
        "observedGeneration": generation,
        "conditions": merge(old_conditions, current, generation, now),
    }


def encoded_result(result: Any) -> str:
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=str)


def result_fields(result: Any, ref_key: str) -> tuple[dict[str, Any], str | None]:
    """Status fields for the result, and the JSON to store under ``ref_key`` when it is too large to inline.

    A merge patch with ``None`` removes the other field, so a status never holds both.
    """
    text = encoded_result(result)
    if len(text.encode()) < INLINE_RESULT_BYTES:
        return {"result": json.loads(text), "resultRef": None}, None
    return {"result": None, "resultRef": result_ref(ref_key)}, text


def outcome_fields(
    outcome: RunOutcome,
    progress: Progress | None,
    *,
    generation: int | None,
    old_conditions: list[dict[str, Any]] | None,
    ignored: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """Everything the final status patch holds except the result (see :func:`result_fields`)."""
    fields = {} if progress is None else progress_fields(progress)
    if progress is None:
        fields["tasks"] = recent_tasks(outcome.tasks)
    fields |= {"cost": round(outcome.cost, 6), "tokens": outcome.tokens, "completedAt": now_rfc3339(now)}
    message = outcome.message or outcome.reason
    fields |= phase_fields(
        outcome.phase,
        outcome.reason,
        message,
        generation=generation,
        old_conditions=old_conditions,
        degraded=outcome.degraded,
        ignored=ignored,
        now=now,
    )
    return fields


Patch = Callable[[dict[str, Any]], Awaitable[None]]


class StatusWriter:
    """Coalesces status updates: at most one patch per ``interval`` while a run goes, at once on ``flush``.

    The engine reports every dispatch and result; a busy run would otherwise patch the API server many times a
    second. A failed patch keeps its fields for the next one (the newest value of each field wins).
    """

    def __init__(self, patch: Patch, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._patch = patch
        self.interval = interval
        self._clock = clock
        self._pending: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._last = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.patches = 0

    def stage(self, fields: dict[str, Any]) -> None:
        self._pending.update(fields)
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="orchestration-status")

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            delay = self._last + self.interval - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.flush()
            except Exception as e:  # the API server may be briefly away; the next round retries
                log.warning("status patch failed, will retry: %s", describe_error(e))
                await asyncio.sleep(self.interval)

    async def flush(self) -> None:
        async with self._lock:
            self._wake.clear()
            if not self._pending:
                return
            fields, self._pending = self._pending, {}
            try:
                await self._patch(fields)
            except BaseException:
                self._pending = fields | self._pending
                self._wake.set()
                raise
            self._last = self._clock()
            self.patches += 1

    async def close(self) -> None:
        """Stop the background loop; what is still pending is written now."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()


# ---------------------------------------------------------------------------------------------- approvals
def approval_status(record: Any) -> dict[str, Any]:
    """One approval (``podium.dataplane.approvals.ApprovalRecord``) as status.approvals shows it."""
    out = {
        "step": record.step,
        "state": record.state,
        "requestedAt": _stamp(record.requested_at),
        "deadline": _stamp(record.deadline),
        "decidedAt": _stamp(record.decided_at),
        "decidedBy": record.by,
        "comment": (record.comment or "")[:1024] or None,
        "summary": (record.summary or "")[:1024] or None,
    }
    return {k: v for k, v in out.items() if v is not None}


def approvals_fields(records: Sequence[Any]) -> dict[str, Any]:
    return {"approvals": [approval_status(r) for r in records[-MAX_TASKS:]]} if records else {}


def waiting_message(namespace: str, name: str, steps: Sequence[str]) -> str:
    """What AwaitingApproval says: what waits, and the command that decides, as it can be pasted."""
    listed = ", ".join(steps)
    flag = f" --step {steps[0]}" if len(steps) == 1 else " --step <step>"
    where = "" if namespace == "default" else f" -n {namespace}"
    return (
        f"{listed} awaits approval: podium run approve {name}{flag}{where} (or reject; annotation podium.dev/approve)"
    )


APPROVAL_EVENTS = {
    "Waiting": ("Normal", "ApprovalRequested"),
    "Approved": ("Normal", "Approved"),
    "Rejected": ("Warning", "Rejected"),
    "TimedOut": ("Warning", "ApprovalTimedOut"),
}


def approval_events(seen: dict[str, str], records: Sequence[Any]) -> list[tuple[str, str, str, str]]:
    """Events (type, reason, message, the approval's new state) for approvals whose state changed since ``seen``
    (step -> state), which is updated. A restarted operator starts from status.approvals, so it does not announce
    old news again."""
    out = []
    for record in records:
        if seen.get(record.step) == record.state:
            continue
        seen[record.step] = record.state
        kind, reason = APPROVAL_EVENTS.get(record.state, ("Normal", record.state))
        if record.state == "Waiting":
            message = f"{record.step} awaits approval" + (f": {record.summary}" if record.summary else "")
        else:
            who = f" by {record.by}" if record.by else ""
            verb = {"TimedOut": "timed out"}.get(record.state, record.state.lower())
            message = f"{record.step} {verb}{who}" + (f": {record.comment}" if record.comment else "")
        out.append((kind, reason, message, record.state))
    return out


def wait_event(told: set[str], waiting: Sequence[str]) -> str | None:
    """The WaitingForAgent Event's message for the waits in ``waiting`` not in ``told`` (updated), or None: each
    wait is said once, though the run's Waiting condition comes and goes with it (a task waits, is taken, waits
    again while its agent's model server restarts)."""
    news = [why for why in waiting if why not in told]
    told.update(news)
    return "; ".join(news) or None


def data_loss_event(type_: str, payload: Any) -> tuple[str, str] | None:
    """The Warning Event (reason, message) an engine event about Redis losing the run's data deserves on the
    Orchestration, where ``kubectl describe`` shows it; None for every other event (they are on the run's stream)."""
    if type_ == "task.resent":
        return "TaskResent", f"task {payload['task']} for {payload['agent']}: {payload['why']}; sent again"
    if type_ == "run.restored":
        steps = payload["steps"]
        return "JournalRestored", f"{payload['why']}; wrote back the entries of {len(steps)} finished steps"
    return None
