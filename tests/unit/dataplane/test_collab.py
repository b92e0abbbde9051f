"""The collaboration shapes on the wire: an answer's state updates and messages, a task's context, and the rules
of approval records (first decision wins, a restart keeps the deadline)."""

from __future__ import annotations

import pytest

from podium.dataplane import approvals
from podium.dataplane.collab import (
    MAX_STATE_UPDATES,
    InvalidEffects,
    StateUpdate,
    context_versions,
    matches,
    parse_messages,
    parse_state_updates,
)
from podium.dataplane.mailbox import Told
from podium.dataplane.messages import Result, Task
from podium.dataplane.records import Event

CONTEXT = {"blackboard": {"values": {"plan": {"value": {"a": 1}, "version": 4}, "new": {"value": None, "version": 0}}}}


def test_a_write_without_a_base_is_based_on_what_the_task_was_told() -> None:
    versions = context_versions(CONTEXT)
    assert versions == {"plan": 4, "new": 0}
    assert parse_state_updates({"plan": {"a": 2}, "other": 1}, versions) == [
        StateUpdate("plan", {"a": 2}, 4),
        StateUpdate("other", 1, None),  # a key the task did not read: a blind write
    ]
    explicit = parse_state_updates([{"key": "plan", "value": None, "baseVersion": 2}], versions)
    assert explicit == [StateUpdate("plan", None, 2)]  # null is a value; the writer's own base wins


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("plan", "stateUpdates must be a list or an object, got str"),
        ([{"key": "plan"}], "stateUpdates[0] has no value"),
        ([{"key": "bad key", "value": 1}], "stateUpdates[0].key 'bad key' is not a state key"),
        ([{"key": "k", "value": 1, "base": 2}], "stateUpdates[0] has unknown field(s) base"),
        ([{"key": "k", "value": 1, "baseVersion": -1}], "stateUpdates[0].baseVersion must be an integer >= 0"),
        ([{"key": "k", "value": 1}] * (MAX_STATE_UPDATES + 1), f"at most {MAX_STATE_UPDATES} allowed"),
    ],
)
def test_malformed_state_updates_say_which_entry_and_why(raw: object, error: str) -> None:
    with pytest.raises(InvalidEffects) as exc:
        parse_state_updates(raw)
    assert error in str(exc.value)


def test_messages_need_a_type_and_nothing_else_but_a_payload() -> None:
    assert [m.to_wire() for m in parse_messages([{"type": "finding", "payload": {"x": 1}}, {"type": "ping"}])] == [
        {"type": "finding", "payload": {"x": 1}},
        {"type": "ping", "payload": None},
    ]
    with pytest.raises(InvalidEffects, match=r"messages\[0\].type 'a b'"):
        parse_messages([{"type": "a b"}])
    with pytest.raises(InvalidEffects, match=r"messages\[0\] has unknown field\(s\) to"):
        parse_messages([{"type": "x", "to": "w2"}])


def test_subscriptions_match_exact_types_prefixes_and_everything() -> None:
    assert matches(["finding"], "finding") and not matches(["finding"], "findings")
    assert matches(["review.*"], "review.done") and not matches(["review.*"], "reviewer")
    assert matches(["*"], "anything") and not matches([], "anything")


def test_a_context_says_only_what_there_is_to_say() -> None:
    assert Told().to_context() is None
    told = Told(
        values={"plan": ({"a": 1}, 4)},
        changes=[{"key": "plan", "kind": "rollback"}],
        messages=[Event("1-0", "finding", "w1", {"x": 1}, 5.0)],
    )
    context = told.to_context()
    assert context == {
        "blackboard": {
            "values": {"plan": {"value": {"a": 1}, "version": 4}},
            "changes": [{"key": "plan", "kind": "rollback"}],
            "changesDropped": 0,
        },
        "messages": [{"id": "1-0", "type": "finding", "sender": "w1", "payload": {"x": 1}, "at": 5.0}],
        "messagesDropped": 0,
    }
    assert "messages" not in (told.to_context(messages=False) or {})


def test_context_and_effects_cross_the_bus_intact() -> None:
    task = Task("u:s:1", "execute", 1, "ns", "w1", "ns/o", context=CONTEXT)
    assert Task.from_json(task.to_json()).context == CONTEXT
    assert "context" not in Task.from_json(Task("u:s:1", "execute", 1, "ns", "w1").to_json()).to_json().decode()
    result = Result("u:s:1", 1, True, "out", state_updates=[{"key": "k", "value": 1, "baseVersion": 0}])
    result.messages = [{"type": "t", "payload": None}]
    back = Result.from_json(result.to_json())
    assert back.state_updates == result.state_updates and back.messages == result.messages
    with pytest.raises(ValueError, match="field 'state_updates' must be a list"):
        Result.from_dict({**result.to_dict(), "state_updates": "k=1", "finished_at": 1})


def test_the_first_decision_wins_and_a_restart_keeps_the_request() -> None:
    asked = approvals.requested(None, "stage-a", 100.0, 60.0, "{...}")
    assert (asked.state, asked.requested_at, asked.deadline) == (approvals.WAITING, 100.0, 160.0)
    assert approvals.requested(asked, "stage-a", 500.0, 60.0, "{...}") is asked  # the same deadline after a restart
    yes = approvals.decided(asked, "stage-a", approvals.APPROVED, 120.0, "alice", "ok")
    assert (yes.state, yes.by, yes.requested_at) == (approvals.APPROVED, "alice", 100.0)
    assert approvals.decided(yes, "stage-a", approvals.REJECTED, 130.0, "bob", None) is yes
    ahead = approvals.decided(None, "result", approvals.APPROVED, 10.0, "annotation", None)
    later = approvals.requested(ahead, "result", 50.0, None, "{}")
    assert (later.state, later.requested_at) == (approvals.APPROVED, 50.0)  # decided before it was asked
    with pytest.raises(ValueError, match="a decision is one of"):
        approvals.decided(None, "x", approvals.WAITING, 1.0, "me", None)
