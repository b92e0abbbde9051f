"""Orchestration status from the engine's progress and outcome, and the throttled writer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podium.api.orchestration import Limits, OrchestrationStatus
from podium.engine.progress import Progress, TaskRecord, TaskState
from podium.engine.runner import RunOutcome
from podium.operator.conditions import find
from podium.operator.orchestrations import run
from podium.operator.orchestrations import status as st


def record(i: int, state: TaskState = "Succeeded", started: float | None = 1000.0, **kw: Any) -> TaskRecord:
    return TaskRecord(
        step=f"s{i}", kind="execute", agent="a", state=state, attempts=1, started_at=started, task_id=f"u:s{i}:1", **kw
    )


def test_progress_fields_validate_against_the_api_model_and_keep_the_newest_100_tasks() -> None:
    tasks = [record(i, started=1000.0 + i) for i in range(150)] + [record(999, "Pending", started=None)]
    fields = st.progress_fields(Progress(total=151, done=150, tasks=tasks, cost=0.1234567, tokens=42))
    assert fields["progress"] == "150/151" and fields["tasksDone"] == 150 and fields["tasksTotal"] == 151
    assert len(fields["tasks"]) == 100
    assert fields["tasks"][0]["name"] == "s51" and fields["tasks"][-1]["name"] == "s999"
    assert fields["tasks"][0]["startedAt"] == "1970-01-01T00:17:31Z"
    OrchestrationStatus.model_validate(fields)  # the CRD schema's shape: nothing the API server would reject


def test_task_errors_are_truncated_to_the_schema_bound() -> None:
    (task,) = st.recent_tasks([record(1, "Failed", error="x" * 10_000)])
    assert task["state"] == "Failed" and len(task["error"]) == st.MAX_ERROR


def test_small_results_are_inline_and_large_ones_go_by_reference() -> None:
    small, stored = st.result_fields({"answer": 42}, "podium:{ns/o}:result:u")
    assert small == {"result": {"answer": 42}, "resultRef": None} and stored is None
    big_value = {"text": "y" * (40 * 1024)}
    big, stored = st.result_fields(big_value, "podium:{ns/o}:result:u")
    assert big == {"result": None, "resultRef": "redis:podium:{ns/o}:result:u"}
    assert stored is not None and '"text"' in stored


def test_budget_exceeded_failure_shows_in_phase_and_conditions() -> None:
    outcome = RunOutcome(
        phase="Failed", reason="BudgetExceeded", message="budget exceeded: maxTasks used 3 of 3", cost=0.5, tokens=9
    )
    fields = st.outcome_fields(outcome, None, generation=4, old_conditions=None, now=0)
    assert fields["phase"] == "Failed" and fields["completedAt"] == "1970-01-01T00:00:00Z"
    conds = fields["conditions"]
    assert find(conds, "Failed") == {
        "type": "Failed",
        "status": "True",
        "reason": "BudgetExceeded",
        "message": "budget exceeded: maxTasks used 3 of 3",
        "lastTransitionTime": "1970-01-01T00:00:00Z",
        "observedGeneration": 4,
    }
    assert find(conds, "BudgetExceeded")["status"] == "True"  # type: ignore[index]
    assert find(conds, "Complete")["status"] == "False"  # type: ignore[index]
    assert find(conds, "Running")["reason"] == "Failed"  # type: ignore[index]
    OrchestrationStatus.model_validate(fields)


def test_degraded_success_and_transition_times_only_move_on_change() -> None:
    running = st.phase_fields("Running", "Running", "go", generation=1, old_conditions=None, now=100)
    assert find(running["conditions"], "Running")["status"] == "True"  # type: ignore[index]
    outcome = RunOutcome(phase="Succeeded", reason="Degraded", message="lost summarise", degraded=True)
    done = st.outcome_fields(outcome, None, generation=1, old_conditions=running["conditions"], now=200)
    assert done["degraded"] is True
    degraded = find(done["conditions"], "Degraded")
    assert degraded is not None and degraded["status"] == "True" and degraded["message"] == "lost summarise"
    # Suspended stayed False: its time is the first one; Running flipped: its time is the new one.
    assert find(done["conditions"], "Suspended")["lastTransitionTime"] == "1970-01-01T00:01:40Z"  # type: ignore[index]
    assert find(done["conditions"], "Running")["lastTransitionTime"] == "1970-01-01T00:03:20Z"  # type: ignore[index]


async def test_writer_coalesces_bursts_into_few_patches_and_keeps_the_newest_values() -> None:
    patches: list[dict[str, Any]] = []

    async def patch(fields: dict[str, Any]) -> None:
        patches.append(dict(fields))

    writer = st.StatusWriter(patch, interval=0.2)
    writer.start()
    for i in range(200):
        writer.stage({"progress": f"{i}/200", "tasksDone": i})
        await asyncio.sleep(0.002)
    await writer.close()
    assert 2 <= len(patches) <= 6, len(patches)
    assert patches[-1] == {"progress": "199/200", "tasksDone": 199}


async def test_writer_keeps_fields_of_a_failed_patch_for_the_next_one() -> None:
    seen: list[dict[str, Any]] = []
    fail = [True]

    async def patch(fields: dict[str, Any]) -> None:
        if fail[0]:
            fail[0] = False
            raise ConnectionError("api server away")
        seen.append(fields)

    writer = st.StatusWriter(patch, interval=0.05)
    writer.stage({"phase": "Running", "progress": "0/3"})
    with pytest.raises(ConnectionError):
        await writer.flush()
    writer.stage({"progress": "1/3"})
    await writer.flush()
    assert seen == [{"phase": "Running", "progress": "1/3"}]


def test_a_pending_run_says_what_it_waits_for() -> None:
    fields = st.phase_fields("Pending", "AgentsNotReady", "waiting for a, b", generation=2, old_conditions=None)
    running = find(fields["conditions"], "Running")
    assert running is not None and running["status"] == "False"
    assert (running["reason"], running["message"]) == ("AgentsNotReady", "waiting for a, b")
    assert find(fields["conditions"], "Complete") is None


def test_a_suspended_run_says_why_in_its_suspended_condition() -> None:
    why = "spec.suspend is true: no new tasks are dispatched"
    suspended = {c.type: c for c in st.conditions(st.SUSPENDED, "Suspended", why)}["Suspended"]
    assert (suspended.status, suspended.reason, suspended.message) == (True, "Suspended", why)
    running = {c.type: c for c in st.conditions(st.RUNNING, "", "")}["Suspended"]
    assert (running.status, running.message) == (False, "")


def test_redis_losing_a_runs_data_is_a_warning_on_the_orchestration_and_other_engine_events_are_not() -> None:
    resent = {"step": "stage-a", "task": "u:stage-a:1", "agent": "w", "why": "lost from Redis: its journal entry..."}
    assert st.data_loss_event("task.resent", resent) == (
        "TaskResent",
        "task u:stage-a:1 for w: lost from Redis: its journal entry...; sent again",
    )
    restored = {"steps": ["stage-a", "stage-b"], "why": "lost from Redis: the journal was gone"}
    assert st.data_loss_event("run.restored", restored) == (
        "JournalRestored",
        "lost from Redis: the journal was gone; wrote back the entries of 2 finished steps",
    )
    assert st.data_loss_event("task.finished", {"step": "stage-a", "state": "Succeeded"}) is None


def test_a_started_run_follows_an_edit_of_its_limits_and_says_what_changed() -> None:
    started = {"strategy": "pipeline", "input": {"x": 1}, "limits": {"maxTasks": 10}}
    assert run.limits_edit(started, started) is None
    assert run.limits_edit(started, started | {"suspend": True}) is None
    edited = run.limits_edit(started, started | {"limits": {"maxTasks": 3, "timeoutSeconds": 60}})
    assert edited is not None
    limits, wire = edited
    assert (limits.max_tasks, limits.timeout_seconds, wire) == (3, 60, {"maxTasks": 3, "timeoutSeconds": 60})
    assert run.changes(Limits(max_tasks=10), limits) == "timeoutSeconds 3600 -> 60, maxTasks 10 -> 3"
    removed = run.limits_edit(started, {k: v for k, v in started.items() if k != "limits"})
    assert removed is not None and removed[0] == Limits() and removed[1] is None  # back to the defaults
    assert run.limits_edit(started, started | {"limits": {"maxTasks": -1}}) is None  # not limits: not followed
    # Limits are followed, not ignored; an edit of anything else beside them still is.
    assert run.edit_ignored(started, started | {"limits": {"maxTasks": 3}}, 2) == ""
    why = run.edit_ignored(started, started | {"limits": {"maxTasks": 3}, "input": {"x": 2}}, 3)
    assert "generation 3" in why and "spec.suspend and spec.limits" in why


def test_an_edit_of_a_started_run_other_than_suspend_is_shown_as_ignored_through_its_end() -> None:
    started = {"strategy": "pipeline", "input": {"x": 1}, "suspend": False}
    assert run.edit_ignored(started, started | {"suspend": True}, 2) == ""  # the run follows suspend
    why = run.edit_ignored(started, started | {"input": {"x": 2}}, 3)
    assert "generation 3" in why and "spec.suspend" in why
    fields = st.phase_fields(st.RUNNING, "Running", "in progress", generation=3, old_conditions=None, ignored=why)
    ignored = find(fields["conditions"], "SpecIgnored")
    assert ignored is not None and (ignored["status"], ignored["reason"]) == ("True", "RunStarted")
    done = RunOutcome(phase="Succeeded", reason="Completed", message="completed", result={})
    final = st.outcome_fields(done, None, generation=3, old_conditions=fields["conditions"], ignored=why)
    assert find(final["conditions"], "SpecIgnored") is not None and final["observedGeneration"] == 3
    assert (
        find(st.phase_fields(st.RUNNING, "Running", "", generation=3, old_conditions=None)["conditions"], "SpecIgnored")
        is None
    )


def test_each_wait_for_an_agent_is_an_event_once_however_often_it_comes_back() -> None:
    told: set[str] = set()
    down = "agent 'writer' is not ready (its backend is unavailable: ...): its task waits in its queue"
    assert st.wait_event(told, [down]) == down
    assert st.wait_event(told, []) is None  # a replica took the task
    assert st.wait_event(told, [down]) is None  # the same wait again: the condition says it, no second Event
    other = "agent 'editor' is not ready (none of its 1 replicas is ready since moments ago): waiting up to 180s"
    assert st.wait_event(told, [down, other]) == other
