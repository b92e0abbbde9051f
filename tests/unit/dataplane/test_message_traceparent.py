"""A task's trace context on the wire: carried when set, absent when not, and never a reason to refuse a task."""

from __future__ import annotations

import json

import pytest

from podium.dataplane.messages import MAX_TRACEPARENT, Task

HEADER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_traceparent_travels_with_the_task() -> None:
    task = Task("u:s:1", "review", {"x": 1}, "ns", "rev", "ns/o", traceparent=HEADER)
    assert json.loads(task.to_json())["traceparent"] == HEADER
    assert Task.from_json(task.to_json()).traceparent == HEADER


def test_an_untraced_task_has_no_traceparent_on_the_wire() -> None:
    raw = Task("u:s:1", "review", {}, "ns", "rev").to_json()
    assert "traceparent" not in json.loads(raw)
    assert Task.from_json(raw).traceparent == ""


@pytest.mark.parametrize("bad", [42, None, ["00-..."], "x" * (MAX_TRACEPARENT + 1)])
def test_a_bad_traceparent_is_dropped_and_the_task_kept(bad: object) -> None:
    data = json.loads(Task("u:s:1", "review", {"x": 1}, "ns", "rev").to_json())
    for variant in (data, {k: v for k, v in data.items() if k != "created_at"}):  # the fast path, the strict one
        task = Task.from_json(json.dumps({**variant, "traceparent": bad}))
        assert task.traceparent == "" and task.input == {"x": 1}
