"""`podium run approve|reject|state|broadcast` and `history --agent`: the decisions they write, what they print."""

from __future__ import annotations

import pytest

from podium.cli import orchestrations, run_state
from podium.dataplane.records import Entry, Event
from podium.operator.orchestrations import approvals as ann

WAITING = {"phase": "AwaitingApproval", "approvals": [{"step": "stage-draft", "state": "Waiting"}]}


def test_approve_picks_the_one_step_waiting_or_asks_which() -> None:
    assert run_state.chosen_step("r", WAITING, None) == "stage-draft"
    assert run_state.chosen_step("r", {}, "result") == "result"  # deciding ahead of the request
    with pytest.raises(SystemExit, match="waits for no approval now"):
        run_state.chosen_step("r", {"phase": "Running"}, None)
    two = {"approvals": [{"step": "a", "state": "Waiting"}, {"step": "b", "state": "Waiting"}]}
    with pytest.raises(SystemExit, match=r"several approvals \(a, b\): choose one with --step"):
        run_state.chosen_step("r", two, None)


def test_a_decision_adds_its_step_to_the_annotation_the_operator_reads() -> None:
    patch = run_state.decision_patch({ann.APPROVE: "plan"}, "approve", "stage-draft", None, "alice")
    annotations = patch["metadata"]["annotations"]
    assert annotations == {ann.APPROVE: "plan,stage-draft", ann.COMMENT: None, ann.DECIDED_BY: "alice"}
    decided = ann.decisions({k: v for k, v in annotations.items() if v is not None})
    assert [(d.step, d.state, d.by) for d in decided] == [
        ("plan", "Approved", "alice"),
        ("stage-draft", "Approved", "alice"),
    ]
    rejected = run_state.decision_patch({}, "reject", "result", "not yet", "bob")["metadata"]["annotations"]
    assert rejected[ann.REJECT] == "result" and rejected[ann.COMMENT] == "not yet"


def test_state_is_a_table_and_a_payload_may_be_a_bare_word() -> None:
    lines = run_state.state_lines([("draft", {"intro": "x" * 200}, 3, "w1"), ("plan", [1], 1, "spec")])
    assert lines[0].split() == ["KEY", "VERSION", "WRITER", "VALUE"]
    assert lines[1].split()[:3] == ["draft", "3", "w1"] and lines[1].endswith("...")
    assert run_state.parse_payload('{"a": 1}') == {"a": 1} and run_state.parse_payload("hello") == "hello"


def test_an_agents_history_is_its_steps_and_its_messages_in_that_run() -> None:
    events = [Event("1-0", "finding", "w1", {}, 1.0), Event("2-0", "task.finished", "engine", {}, 2.0)]
    delivered = [
        Event("3-0", "finding", "w1", {}, 1.5, run="ns/r"),
        Event("4-0", "finding", "w1", {}, 1.6, run="ns/other"),
        Event("5-0", "result", "w2/r-0", {}, 1.7),
    ]
    entries = [Entry("task-a", "done", "u:task-a:1", "w1", 1), Entry("task-b", "done", "u:task-b:1", "w2", 1)]
    got, steps = orchestrations.agent_view("w2", "ns/r", events, entries, delivered)
    assert [(e.id, e.sender) for e in got] == [("3-0", "w1 -> w2")]
    assert [e.step for e in steps] == ["task-b"]
    sent, _ = orchestrations.agent_view("w1", "ns/r", events, entries, [])
    assert [e.id for e in sent] == ["1-0"]
