"""What crosses between a Podium task and an A2A message (podium.agent.a2a.convert), the card an Agent publishes, and
the message an A2A user gets when the SDK is not installed."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from a2a.types import Artifact, Message, Part, Role, StreamResponse, Task, TaskState, TaskStatus
from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict

from podium.agent import a2a as a2a_pkg
from podium.agent.a2a import convert
from podium.agent.a2a.server import agent_card
from podium.agent.backends.a2a import A2ARunner
from podium.agent.backends.base import BackendError
from podium.api.a2a import A2ABackend
from podium.api.agent import AgentSpec


def data(value: Any) -> Part:
    return Part(data=ParseDict(value, struct_pb2.Value()), media_type="application/json")


def message(*parts: Part, **podium: Any) -> Message:
    return Message(
        role=Role.ROLE_USER, message_id="m", parts=list(parts), metadata={"podium": podium} if podium else None
    )


def test_a_message_becomes_an_execute_task_unless_it_names_a_kind() -> None:
    assert convert.request_of(message(Part(text="hello"))) == convert.Request("execute", "hello")
    assert convert.request_of(message(data({"n": 3, "x": [1.5, 2]}), kind="review")) == convert.Request(
        "review", {"n": 3, "x": [1.5, 2]}
    )
    with pytest.raises(convert.NotUnderstood, match="'dance' is not a task kind; use one of bid, evaluate"):
        convert.request_of(message(Part(text="x"), kind="dance"))


def test_parts_are_joined_as_people_would_read_them() -> None:
    assert convert.parts_value([Part(text="line one"), Part(text="line two")]) == "line one\nline two"
    assert convert.parts_value([Part(text="note"), data({"a": 1})]) == ["note", {"a": 1}]
    assert convert.parts_value([Part(text='{"a": 1}', media_type="application/json")]) == {"a": 1}
    with pytest.raises(convert.NotUnderstood, match="no parts"):
        convert.parts_value([])
    with pytest.raises(convert.NotUnderstood, match=r"not a file \(raw bytes\): send the content as text or data"):
        convert.parts_value([Part(raw=b"%PDF")])


def test_outputs_go_back_as_text_or_data_and_read_back_the_same() -> None:
    for value in ("plain words", {"title": "T", "n": 2, "scores": [0.5, 1]}, [1, 2, 3], 7, None, True):
        assert convert.parts_value(convert.value_parts(value)) == value
        assert convert.parts_value(convert.value_parts(value, as_data=False)) == value


def test_an_outgoing_message_carries_the_task_in_podium_metadata() -> None:
    sent = convert.outgoing_message(
        kind="review", value={"code": "x=1"}, task_id="t1", orchestration="ns/run", attempt=2, accepts_json=False
    )
    assert convert.podium_metadata(sent.metadata) == {
        "kind": "review",
        "taskId": "t1",
        "orchestration": "ns/run",
        "attempt": 2,
    }
    assert sent.parts[0].text == '{"code": "x=1"}' and sent.parts[0].media_type == "application/json"
    assert convert.request_of(sent) == convert.Request("review", {"code": "x=1"})
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    traced = convert.outgoing_message(
        kind="execute", value="x", task_id="t2", orchestration="", attempt=1, accepts_json=True, traceparent=parent
    )
    assert convert.request_of(traced).traceparent == parent


def _stream(*events: dict[str, Any]) -> convert.Tracker:
    tracker = convert.Tracker()
    for event in events:
        tracker.add(StreamResponse(**event))
    return tracker


def test_a_completed_stream_answers_with_its_artifact_and_podium_accounting() -> None:
    artifact = Artifact(
        artifact_id="a", parts=[data({"ok": 1})], metadata=convert.result_metadata({"quality": 0.5, "tokens": 12})
    )
    done = Task(id="t", status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED), artifacts=[artifact])
    answer = _stream({"task": done}).answer()
    assert answer == convert.Answer({"ok": 1}, quality=0.5, tokens=12, cost=None)


def test_a_direct_reply_message_is_the_answer() -> None:
    reply = Message(role=Role.ROLE_AGENT, message_id="r", parts=[Part(text="hi there")])
    assert _stream({"message": reply}).answer().output == "hi there"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TaskState.TASK_STATE_FAILED, "task failed: disk full"),
        (TaskState.TASK_STATE_INPUT_REQUIRED, "task asks for more input, which a Podium task cannot give: disk full"),
        (TaskState.TASK_STATE_WORKING, "the answer ended before the task did (last state TASK_STATE_WORKING)"),
    ],
)
def test_a_task_that_ends_without_a_result_says_how(state: int, expected: str) -> None:
    why = Message(role=Role.ROLE_AGENT, message_id="w", parts=[Part(text="disk full")])
    task = Task(id="t", status=TaskStatus(state=state, message=why))
    with pytest.raises(convert.Unanswered) as info:
        _stream({"task": task}).answer()
    assert str(info.value).startswith(expected)


def test_the_card_lists_capabilities_as_skills_and_both_transports() -> None:
    spec = AgentSpec.model_validate(
        {
            "role": "reviewer",
            "capabilities": [{"name": "python", "level": 0.9}, {"name": "security", "level": 0.5}],
            "backend": {"command": {"args": ["ruff"]}},
            "a2a": {"enabled": True},
        }
    )
    card = agent_card(spec, "team", "rev", "http://rev.team.svc:8081/")
    assert card.name == "rev" and card.description == "Podium agent team/rev (reviewer)"
    assert [(s.id, s.description) for s in card.skills] == [
        ("python", "reviewer: python at level 0.9 of 1"),
        ("security", "reviewer: security at level 0.5 of 1"),
    ]
    assert {(i.protocol_binding, i.protocol_version, i.url) for i in card.supported_interfaces} == {
        ("JSONRPC", "1.0", "http://rev.team.svc:8081/"),
        ("HTTP+JSON", "1.0", "http://rev.team.svc:8081/rest"),
        ("JSONRPC", "0.3", "http://rev.team.svc:8081/"),
        ("HTTP+JSON", "0.3", "http://rev.team.svc:8081/rest"),
    }


def test_the_a2a_port_cannot_be_the_probe_port() -> None:
    with pytest.raises(ValueError, match=r"a2a\.port must not be 8080"):
        AgentSpec.model_validate(
            {"role": "r", "backend": {"command": {"args": ["x"]}}, "a2a": {"enabled": True, "port": 8080}}
        )


async def test_without_the_sdk_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "a2a" else real(name, *a))
    with pytest.raises(a2a_pkg.A2AUnavailable) as info:
        a2a_pkg.require("server")
    assert str(info.value) == (
        "A2A server needs the A2A SDK (a2a not installed): pip install 'podium[a2a]' (the podium images include it)"
    )
    runner = A2ARunner(A2ABackend(url="http://127.0.0.1:1"))
    with pytest.raises(BackendError, match=r"^a2a: A2A client needs the A2A SDK .*pip install 'podium\[a2a\]'"):
        await runner.start()
