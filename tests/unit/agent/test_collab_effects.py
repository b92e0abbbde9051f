"""What an answer asks the engine to do (state writes, messages), through an envelope or the SDK, as the runtime
checks and completes it; and the task's context as an llm sees it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podium.agent import sdk
from podium.agent.backends import llm_prompts
from podium.agent.backends.base import BackendOutput, InvalidOutput, from_value
from podium.agent.runtime import effects
from podium.dataplane.messages import Task

CONTEXT = {
    "blackboard": {
        "values": {"draft": {"value": {"intro": "x"}, "version": 3}},
        "changes": [{"key": "draft", "kind": "rollback", "writer": "user:alice", "new": {"intro": "x"}}],
    },
    "messages": [{"id": "1-0", "type": "finding", "sender": "w1", "payload": {"bug": 1}, "at": 1.0}],
}
TASK = Task("u:s:1", "execute", {"topic": "t"}, "ns", "w2", "ns/r", context=CONTEXT)


def test_an_envelope_carries_state_updates_and_messages() -> None:
    out = from_value({"output": 1, "stateUpdates": {"draft": {"intro": "y"}}, "messages": [{"type": "done"}]})
    assert out.output == 1
    updates, messages = effects(TASK, out, sdk.Effects(CONTEXT))
    assert updates == [{"key": "draft", "value": {"intro": "y"}, "baseVersion": 3}]  # from the version it was told
    assert messages == [{"type": "done", "payload": None}]


def test_sdk_calls_read_the_context_and_record_effects_also_from_worker_threads() -> None:
    def work() -> dict[str, Any]:
        sdk.write("draft", {**sdk.read("draft"), "details": "z"})
        sdk.write("notes", "n", base_version=0)
        sdk.publish("section.done", {"section": "details"})
        return {"told": [m["type"] for m in sdk.messages()], "changes": len(sdk.changes()), "v": sdk.version("draft")}

    async def run() -> tuple[Any, sdk.Effects]:
        with sdk.collecting(CONTEXT) as asked:
            value = await asyncio.to_thread(work)  # how the python backend runs a sync function
        return value, asked

    value, asked = asyncio.run(run())
    assert value == {"told": ["finding"], "changes": 1, "v": 3}
    updates, messages = effects(TASK, BackendOutput(value), asked)
    assert updates == [
        {"key": "draft", "value": {"intro": "x", "details": "z"}, "baseVersion": 3},
        {"key": "notes", "value": "n", "baseVersion": 0},
    ]
    assert messages == [{"type": "section.done", "payload": {"section": "details"}}]
    assert sdk.state.__doc__ and sdk.read.__doc__


def test_the_sdk_outside_a_task_and_malformed_effects_are_clear_errors() -> None:
    with pytest.raises(RuntimeError, match="only usable while a task runs"):
        sdk.write("k", 1)
    with pytest.raises(InvalidOutput, match=r"effects are malformed: stateUpdates\[0\].key 'a b'"):
        effects(TASK, BackendOutput(1, state_updates=[{"key": "a b", "value": 1}]), sdk.Effects(None))
    with pytest.raises(InvalidOutput, match="must be lists"):
        effects(TASK, BackendOutput(1, messages="hello"), sdk.Effects(None))


def test_an_llm_is_told_the_shared_state_what_changed_and_its_messages() -> None:
    (user,) = llm_prompts.build_messages(None, {"topic": "t"}, None, context=CONTEXT)
    text = user["content"]
    assert text.startswith('Topic: t\n\nShared state:\n- draft: {"intro": "x"}')
    assert "Changed since your last task:\n- draft: rollback by user:alice" in text
    assert 'Messages for you:\n- finding from w1: {"bug": 1}' in text
    assert llm_prompts.context_text(None) == ""
