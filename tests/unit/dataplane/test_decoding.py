"""Decoding is total and depth is bounded: any bytes become a Task or a MalformedMessage that says why."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.dataplane.messages import (
    MAX_DEPTH,
    MalformedMessage,
    PayloadTooDeep,
    Result,
    Task,
    check_depth,
    json_depth,
    may_nest_deeper,
)


def nested(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = [value]
    return value


def task_json(input: object) -> bytes:
    return json.dumps(
        {"id": "t", "kind": "execute", "input": input, "namespace": "n", "agent": "a", "attempt": 1}
    ).encode()


def test_json_depth_counts_containers_not_scalars() -> None:
    assert json_depth("x") == 0
    assert json_depth([]) == 1
    assert json_depth({"a": [1, {"b": None}]}) == 3
    assert json_depth(nested(10_000)) == 10_000  # iterative: no recursion limit


def test_the_poison_of_the_report_is_a_clear_malformed_message() -> None:
    # ~980 levels, about 2 KB: json.loads used to raise RecursionError, which killed the agent.
    raw = b'{"id":"t","kind":"execute","namespace":"n","agent":"a","input":' + b"[" * 980 + b"]" * 980 + b"}"
    with pytest.raises(MalformedMessage, match=f"limit is {MAX_DEPTH} levels|over the bus limit of {MAX_DEPTH}"):
        Task.from_json(raw)


def test_depth_at_the_limit_is_accepted_one_more_is_refused() -> None:
    # The task object is level 1, so its input may nest MAX_DEPTH - 1 levels.
    assert Task.from_json(task_json(nested(MAX_DEPTH - 1))).input == nested(MAX_DEPTH - 1)
    with pytest.raises(MalformedMessage, match=f"nests {MAX_DEPTH + 1} levels deep"):
        Task.from_json(task_json(nested(MAX_DEPTH)))


def test_depth_far_past_python_recursion_is_refused_not_crashing() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(MalformedMessage, match="too deep"):
        Task.from_json(b'{"id":"t","kind":"execute","namespace":"n","agent":"a","input":' + deep + b"}")
    with pytest.raises(MalformedMessage):
        Result.from_json(json.dumps({"task_id": "t", "ok": True, "output": nested(50)}).encode()[:-1] + b"[" * 99_999)


def test_check_depth_skips_documents_with_few_brackets() -> None:
    assert not may_nest_deeper(b"[" * MAX_DEPTH)
    assert may_nest_deeper("{" * (MAX_DEPTH + 1))
    check_depth(b"[[1]]", nested(1_000), "task")  # few brackets in the text: the value is not even looked at
    with pytest.raises(PayloadTooDeep, match="nests 150 levels deep, over the bus limit of 100"):
        check_depth(b"[" * 150, nested(150), "task 't'")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_any_bytes_decode_to_a_task_or_a_malformed_message(raw: bytes) -> None:
    try:
        Task.from_json(raw)
    except MalformedMessage:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=20,
    )
)
def test_any_json_document_decodes_to_a_task_or_a_malformed_message(doc: object) -> None:
    for raw in (json.dumps(doc).encode(), json.dumps({"id": "t", "kind": 1, "input": doc}).encode()):
        try:
            Task.from_json(raw)
            Result.from_json(raw)
        except MalformedMessage:
            pass


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00", b"1" * 5000, b'{"id": "t", "attempt": 1' + b"0" * 5000 + b"}", b"[" * 50 + b"{" * 60],
)
def test_edge_bytes_are_malformed_messages(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        Task.from_json(raw)
