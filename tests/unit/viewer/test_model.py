"""The JSON the viewer's API builds from what a run leaves behind: its status, journal, events and agents' results."""

from __future__ import annotations

from typing import Any

import pytest

from podium.dataplane.messages import INVALID_OUTPUT, Result
from podium.dataplane.records import Event
from podium.engine.journal import DISPATCHED, DONE, Entry
from podium.viewer.model import RunData, bars, run_detail, run_list, run_summary, spend, timeline
from podium.viewer.source import NotFound, Scope, run_results
from podium.viewer.steps import steps

UID = "u-1"
T0 = 1_800_000_000.0


def orch(name: str = "review", created: str = "2027-01-15T08:00:00Z", **status: Any) -> dict[str, Any]:
    spec = {"strategy": "pipeline", "pipeline": {"stages": [{"name": "lint", "agent": "reviewer"}]}}
    meta = {"name": name, "namespace": "team-a", "uid": UID, "creationTimestamp": created}
    return {"metadata": meta, "spec": spec, "status": status}


def result(step: str, attempt: int, agent: str, *, ok: bool = True, at: float, took: float = 1.0,
           cost: float = 0.0, uid: str = UID, **kw: Any) -> Result:  # fmt: skip
    return Result(f"{uid}:{step}:{attempt}", attempt, ok, agent=agent, finished_at=at, duration_ms=took * 1000,
                  cost=cost, **kw)  # fmt: skip


def done(step: str, agent: str, attempt: int, *, ok: bool = True, start: float, end: float, **kw: Any) -> Entry:
    body = result(step, attempt, agent, ok=ok, at=end, output={"step": step}, cost=kw.pop("cost", 0.0)).to_dict()
    return Entry(step, DONE, f"{UID}:{step}:{attempt}", agent, attempt, "execute", ok=ok, result=body,
                 started_at=start, finished_at=end, **kw)  # fmt: skip


def test_a_run_without_status_is_pending_and_its_age_and_duration_come_from_the_api_timestamps() -> None:
    now = 1_800_000_100.0
    row = run_summary(orch(created="2027-01-15T08:00:00Z"), now)
    assert row["phase"] == "Pending" and row["progress"] == "0/0" and row["durationSeconds"] is None
    assert row["createdAt"] == 1_800_000_000.0 and row["ageSeconds"] == 100.0

    finished = orch(
        phase="Failed",
        startedAt="2027-01-15T08:00:10Z",
        completedAt="2027-01-15T08:00:40Z",
        conditions=[
            {"type": "Running", "status": "False", "reason": "Failed"},
            {"type": "Failed", "status": "True", "reason": "BudgetExceeded", "message": "maxCost 1.0 used"},
        ],
        cost=1.2,
        tokens=300,
    )
    row = run_summary(finished, now)
    # A finished run's duration stops at its end, not at now; the reason is the one of the condition that holds.
    assert row["durationSeconds"] == 30.0 and row["reason"] == "BudgetExceeded"
    assert (row["cost"], row["tokens"]) == (1.2, 300)
    waiting = orch(phase="Pending", conditions=[{"type": "Running", "status": "False", "reason": "AgentsNotReady"}])
    assert run_summary(waiting, now)["reason"] == "AgentsNotReady"


def test_runs_are_listed_newest_first() -> None:
    rows = run_list([orch("old", "2027-01-15T08:00:00Z"), orch("new", "2027-01-15T09:00:00Z")], T0)
    assert [r["name"] for r in rows] == ["new", "old"]


def test_each_attempt_is_a_bar_of_its_own_with_how_it_ended() -> None:
    # Attempt 1 raised on w1, attempt 2's output failed the engine's validation on w2, attempt 3's the runtime's
    # (it carried the task's output schema), attempt 4 on w2 was accepted.
    entry = done("stage-lint", "w2", 4, start=T0, end=T0 + 12, history=["w1", "w2", "w2", "w2"])
    attempts = {
        1: result("stage-lint", 1, "w1", ok=False, at=T0 + 2, took=2, error="boom"),
        2: result("stage-lint", 2, "w2", at=T0 + 5, took=1),
        3: result("stage-lint", 3, "w2", ok=False, at=T0 + 7, took=1, error="bad", error_type=INVALID_OUTPUT),
        4: result("stage-lint", 4, "w2", at=T0 + 12, took=2, replica="w2-0"),
    }
    got = [(b["agent"], b["attempt"], b["state"], b["start"], b["end"], b["error"]) for b in bars(entry, attempts)]
    assert got == [
        ("w1", 1, "failed", T0, T0 + 2, "boom"),
        ("w2", 2, "rejected", T0 + 4, T0 + 5, None),
        ("w2", 3, "rejected", T0 + 6, T0 + 7, "bad"),
        ("w2", 4, "ok", T0 + 10, T0 + 12, None),
    ]


def test_an_answer_the_agent_runtime_refused_against_the_schema_is_rejected_not_failed() -> None:
    # The runtime checks answers against the task's output schema itself: ok=False with error_type invalid_output.
    entry = done("stage-write", "w1", 2, ok=False, start=T0, end=T0 + 4, history=["w1", "w1"])
    refused = "the answer does not honour the task's output schema: the answer must be string, got object"
    attempts = {
        n: result("stage-write", n, "w1", ok=False, at=T0 + 2 * n, error=refused, error_type=INVALID_OUTPUT)
        for n in (1, 2)
    }
    assert [(b["attempt"], b["state"], b["error"]) for b in bars(entry, attempts)] == [
        (1, "rejected", refused),
        (2, "rejected", refused),
    ]


def test_the_journal_adds_the_attempt_in_flight_and_the_one_that_timed_out() -> None:
    running = Entry("stage-x", DISPATCHED, f"{UID}:stage-x:2", "w2", 2, "execute", started_at=T0 + 3)
    first = {1: result("stage-x", 1, "w1", ok=False, at=T0 + 2, took=2, error="boom")}
    assert [(b["agent"], b["state"], b["start"], b["end"]) for b in bars(running, first)] == [
        ("w1", "failed", T0, T0 + 2),
        ("w2", "running", T0 + 3, None),
    ]
    # The last attempt never answered: the step failed with the engine's timeout error, drawn after the answer.
    timed_out = Entry("stage-x", DONE, f"{UID}:stage-x:2", "w2", 2, "execute", ok=False, started_at=T0,
                      finished_at=T0 + 40, error="w2: no result within the timeout")  # fmt: skip
    last = bars(timed_out, first)[-1]
    assert (last["state"], last["start"], last["end"], last["error"]) == (
        "failed",
        T0 + 2,
        T0 + 40,
        "w2: no result within the timeout",
    )
    # With no results kept (streams trimmed) a step is one bar spanning its journal entry.
    alone = bars(done("stage-y", "w3", 1, start=T0, end=T0 + 1), {})
    assert [(b["state"], b["start"], b["end"]) for b in alone] == [("ok", T0, T0 + 1)]


def test_timeline_has_a_lane_per_agent_in_order_of_first_work_and_ignores_other_runs() -> None:
    entries = [done("b", "w2", 1, start=T0 + 5, end=T0 + 6), done("a", "w1", 1, start=T0, end=T0 + 2)]
    results = [
        result("a", 1, "w1", at=T0 + 2, took=2),
        result("a", 1, "w1", at=T0 + 2.5, took=2),  # redelivered and reported twice: one attempt
        result("b", 1, "w2", at=T0 + 6, took=1),
        result("a", 1, "w9", at=T0 + 100, uid="another-run"),
    ]
    tl = timeline(entries, results, UID, now=T0 + 500)
    assert [lane["agent"] for lane in tl["lanes"]] == ["w1", "w2"]
    assert [len(lane["bars"]) for lane in tl["lanes"]] == [1, 1]
    assert (tl["start"], tl["end"]) == (T0, T0 + 6)


def test_spend_counts_every_attempt_and_falls_back_to_the_journal() -> None:
    entries = [
        done("a", "w2", 2, start=T0, end=T0 + 4, cost=0.5),
        done("b", "w3", 1, start=T0, end=T0 + 1, cost=0.25),  # its results are gone from the stream
    ]
    results = [
        result("a", 1, "w1", ok=False, at=T0 + 1, cost=0.125),
        result("a", 2, "w2", at=T0 + 4, cost=0.5),
    ]
    rows = {r["agent"]: r for r in spend(entries, results, UID)}
    assert rows["w1"] == {"agent": "w1", "cost": 0.125, "tokens": 0, "attempts": 1, "failures": 1}
    assert rows["w2"]["cost"] == 0.5 and rows["w2"]["failures"] == 0
    assert rows["w3"]["cost"] == 0.25


def test_history_interleaves_engine_events_steps_and_kubernetes_events_by_time() -> None:
    entries = [done("stage-lint", "reviewer", 1, start=T0 + 1, end=T0 + 2)]
    events = [
        Event("1-0", "run.started", "engine", {"uid": UID}, T0),
        Event("2-0", "task.finished", "engine", {}, T0 + 3),
    ]
    kube = [
        # eventTime has microseconds; lastTimestamp has whole seconds and would sort the event too early.
        {"type": "Normal", "reason": "Succeeded", "message": "done", "eventTime": "2027-01-15T08:00:03.500000Z",
         "lastTimestamp": "2027-01-15T08:00:03Z"},
        {"type": "Warning", "reason": "StepFailed", "message": "x", "count": 3, "lastTimestamp": "2027-01-15T08:00:02Z",
         "eventTime": None},
    ]  # fmt: skip
    data = RunData(obj=orch(), entries=entries, events=events, kube_events=kube)
    items = run_detail(data, now=T0 + 10)["history"]
    assert [i["source"] for i in items] == ["run", "run", "kubernetes", "run", "kubernetes"]
    assert "reviewer execute stage-lint [ok, attempt 1]" in items[1]["text"]
    assert items[2]["text"] == "Warning StepFailed: x (x3)"


def test_a_run_with_a_spec_the_models_refuse_still_gets_a_page() -> None:
    bad = orch()
    bad["spec"] = {"strategy": "pipeline"}  # no pipeline block: the run failed InvalidSpec
    detail = run_detail(RunData(obj=bad, warnings=["Redis x could not be read"]), now=T0)
    assert detail["picture"]["kind"] == "none" and "pipeline" in detail["picture"]["note"]
    assert detail["warnings"] == ["Redis x could not be read"]
    assert detail["run"]["name"] == "review" and detail["timeline"]["lanes"] == []


def test_large_outputs_are_cut_for_the_page() -> None:
    entry = done("stage-lint", "reviewer", 1, start=T0, end=T0 + 1)
    assert entry.result is not None
    entry.result["output"] = {"text": "x" * 10_000}
    step = run_detail(RunData(obj=orch(), entries=[entry]), now=T0)["steps"][0]
    assert isinstance(step["output"], str) and len(step["output"]) < 2200 and "characters in all" in step["output"]


def test_an_agents_conversation_gives_the_runs_own_results_only() -> None:
    mine = result("a", 1, "w1", at=T0).to_dict()
    said = [
        Event("1-0", "result", "w1/r0", mine, T0),
        Event("2-0", "result", "w1/r0", result("a", 1, "w1", at=T0, uid="other").to_dict(), T0),
        Event("3-0", "hello", "someone", {"task_id": f"{UID}:a:1"}, T0),  # a direct message, not a result
        Event("4-0", "result", "w1/r0", {"task_id": f"{UID}:a:1", "ok": "not a bool"}, T0),  # malformed
    ]
    assert [r.task_id for r in run_results(said, UID)] == [f"{UID}:a:1"]


def test_a_viewer_serves_only_its_namespaces() -> None:
    scope = Scope(("team-a",))
    assert scope.check("team-a") == "team-a"
    with pytest.raises(NotFound, match="serves team-a"):
        scope.check("team-b")
    with pytest.raises(NotFound, match="not a namespace name"):
        Scope().check("Team_A")
    assert Scope().check("anything") == "anything"


def test_a_step_shows_how_the_run_ended_it_where_the_journal_cannot_tell() -> None:
    caught = Entry("gen-1-explore-w2", DISPATCHED, f"{UID}:gen-1-explore-w2:1", "w2", 1, "explore", started_at=T0)
    refused = done("stage-draft", "w1", 1, start=T0, end=T0 + 1)
    status = [
        {"name": "gen-1-explore-w2", "state": "Cancelled", "error": "the run ended (TaskFailed) before this task did"},
        {"name": "stage-draft", "state": "Failed", "error": "stage-draft rejected by bob: too vague"},
    ]
    shown = steps([caught, refused], status)
    assert [(s["state"], s["error"]) for s in shown.values()] == [
        ("Cancelled", "the run ended (TaskFailed) before this task did"),
        ("Failed", "stage-draft rejected by bob: too vague"),
    ]
    assert [s["state"] for s in steps([caught, refused]).values()] == ["Running", "Succeeded"]  # a run going on
