"""The tool-call record, the Result field that carries it, the task's budget allowance and the memory keys."""

from __future__ import annotations

import pytest

from podium.dataplane.acl import agent_acl_rules
from podium.dataplane.allowance import Allowance, of_task
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import MalformedMessage, Result
from podium.dataplane.toolcalls import HISTORY_CHARS, ToolCall


def test_tool_calls_travel_in_the_result_and_the_history_keeps_a_bounded_result() -> None:
    call = ToolCall("time", "get_current_time", {"timezone": "UTC"}, True, "x" * (HISTORY_CHARS + 5), 12.3456, 1)
    wire = call.to_wire()
    assert wire["result"].endswith("... [5 more characters]") and wire["ms"] == 12.346
    result = Result("t", 1, False, error="budget", tool_calls=[wire])
    back = Result.from_json(result.to_json())
    assert [ToolCall.from_wire(c).tool for c in back.tool_calls] == ["get_current_time"]
    assert "tool_calls" not in Result("t", 1, True).to_dict()  # results without calls stay as they were
    with pytest.raises(MalformedMessage, match="tool_calls"):
        Result.from_dict({**Result("t", 1, True).to_dict(), "tool_calls": "calls"})
    with pytest.raises(MalformedMessage, match="'ok'"):
        ToolCall.from_wire({"server": "s", "tool": "t", "result": "r"})


def test_the_allowance_a_task_carries_and_when_it_is_spent() -> None:
    allowance = of_task({"budget": {"tokens": 100, "cost": 0.5}})
    assert allowance == Allowance(100, 0.5) and allowance.bounded
    assert allowance.spent(99, 0.1) is None
    assert "token budget is spent (100 tokens used of the 100" in str(allowance.spent(100, 0.1))
    assert "cost budget is spent" in str(allowance.spent(10, 0.5))
    assert of_task({}) == Allowance() and not Allowance().bounded and Allowance().spent(10**9, 1e9) is None
    assert of_task({"budget": {"tokens": True, "cost": "x"}}) == Allowance()  # malformed: unbounded, not a crash


def test_memory_keys_are_the_agents_own_and_its_acl_user_reaches_them() -> None:
    keys = AgentKeys("ns", "a")
    assert keys.turns("uid-1") == "podium:{ns/agent/a}:turns:uid-1"
    assert keys.memory("notes") == "podium:{ns/agent/a}:memory:notes"
    rules = agent_acl_rules("ns", "a")
    assert any(r.startswith("(~podium:{ns/agent/a}:turns:* ") for r in rules)
    assert any(r.startswith("(~podium:{ns/agent/a}:memory:* ") for r in rules)
    with pytest.raises(ValueError, match="memory name"):
        keys.memory("a*b")
