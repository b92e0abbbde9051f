"""Approvals in the operator: decisions from annotations, status.approvals, Events and the AwaitingApproval
condition (pure parts)."""

from __future__ import annotations

from podium.api.orchestration import OrchestrationStatus
from podium.dataplane.approvals import ApprovalRecord
from podium.operator.conditions import find
from podium.operator.orchestrations import approvals as ann
from podium.operator.orchestrations import status as st


def test_annotations_list_decisions_and_a_step_in_both_lists_is_rejected() -> None:
    found = ann.decisions(
        {
            ann.APPROVE: "stage-draft, result,stage-x",
            ann.REJECT: "stage-x",
            ann.COMMENT: "looks fine",
            ann.DECIDED_BY: "alice",
        }
    )
    assert [(d.step, d.state, d.by, d.comment) for d in found] == [
        ("stage-x", "Rejected", "alice", "looks fine"),
        ("stage-draft", "Approved", "alice", "looks fine"),
        ("result", "Approved", "alice", "looks fine"),
    ]
    assert ann.decisions({ann.APPROVE: "plan"})[0].by == "annotation"
    assert ann.decisions(None) == [] and ann.decisions({ann.APPROVE: " , "}) == []


def test_status_approvals_fit_the_crd_and_events_announce_each_change_once() -> None:
    waiting = ApprovalRecord("stage-draft", "Waiting", requested_at=100.0, deadline=160.0, summary='{"v": 1}')
    fields = st.approvals_fields([waiting])
    OrchestrationStatus.model_validate(fields)
    assert fields["approvals"] == [
        {
            "step": "stage-draft",
            "state": "Waiting",
            "requestedAt": "1970-01-01T00:01:40Z",
            "deadline": "1970-01-01T00:02:40Z",
            "summary": '{"v": 1}',
        }
    ]
    seen: dict[str, str] = {}
    assert st.approval_events(seen, [waiting]) == [
        ("Normal", "ApprovalRequested", 'stage-draft awaits approval: {"v": 1}', "Waiting")
    ]
    assert st.approval_events(seen, [waiting]) == []  # already announced (a restart starts from status.approvals)
    timed_out = ApprovalRecord("stage-draft", "TimedOut", requested_at=100.0, by="timeout")
    assert st.approval_events(seen, [timed_out]) == [
        ("Warning", "ApprovalTimedOut", "stage-draft timed out by timeout", "TimedOut")
    ]


def test_awaiting_approval_is_a_phase_with_a_condition_that_says_how_to_decide() -> None:
    message = st.waiting_message("default", "release", ["stage-draft"])
    assert "podium run approve release --step stage-draft (or reject" in message
    # Outside the default namespace the command names it, so it can be pasted as it is.
    assert "podium run approve release --step stage-draft -n team (" in st.waiting_message(
        "team", "release", ["stage-draft"]
    )
    fields = st.phase_fields(st.AWAITING, "ApprovalRequired", message, generation=1, old_conditions=None)
    OrchestrationStatus.model_validate(fields)
    cond = find(fields["conditions"], "AwaitingApproval")
    assert cond is not None and (cond["status"], cond["reason"], cond["message"]) == (
        "True",
        "ApprovalRequired",
        message,
    )
    assert find(fields["conditions"], "Running")["status"] == "False"  # type: ignore[index]
    running = st.phase_fields(st.RUNNING, "Running", "go", generation=1, old_conditions=fields["conditions"])
    assert find(running["conditions"], "AwaitingApproval")["status"] == "False"  # type: ignore[index]
    assert "--step <step>" in st.waiting_message("default", "r", ["a", "b"])
