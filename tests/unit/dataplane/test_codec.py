"""The data plane's JSON codec reads and refuses what Python's json module does, at its edges too."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from enum import StrEnum
from typing import Any

import pytest

from podium.dataplane import codec
from podium.dataplane.messages import MalformedMessage, Result, Task


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, "é", None, True], "b": {"c": -0.0}},
        2**64,  # integers of any size, exactly
        -(2**63) - 1,
        10**400,
        {"k": "x" * 10_000},
    ],
)
def test_values_come_back_as_they_went(value: Any) -> None:
    assert codec.loads(codec.dumps(value)) == json.loads(json.dumps(value)) == value


@pytest.mark.parametrize("bad", [math.nan, {"x": None, "y": math.inf}, [None, -math.inf]])
def test_nan_and_infinity_are_refused_even_beside_a_null(bad: Any) -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        codec.dumps(bad)


def test_a_writer_of_finite_numbers_may_skip_the_check() -> None:
    assert codec.dumps({"x": None}, check_finite=False) == b'{"x":null}'


class Colour(StrEnum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ({"c": Colour.RED}, '{"c":"red"}'),  # a str subclass
        ({1: "a", None: "b"}, '{"1":"a","null":"b"}'),  # a None key: as the json module turns it
    ],
)
def test_keys_are_written_as_the_json_module_writes_them(value: Any, written: str) -> None:
    assert codec.dumps_text(value) == written


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ({1, 2}, "[1,2]"),
        (Point(1), '{"x":1}'),
        (datetime.datetime(2026, 1, 2, 3, 4, 5), '"2026-01-02T03:04:05"'),
        (b"raw", '"cmF3"'),
    ],
)
def test_types_msgspec_knows_are_written_in_its_forms(value: Any, written: str) -> None:
    assert codec.dumps_text(value) == written


@pytest.mark.parametrize("bad", [object(), {(1, 2): "a tuple key"}])
def test_what_neither_can_write_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        codec.dumps({"v": bad})


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"x":NaN}', {"x": math.nan}),  # a foreign producer's literal: read as the json module reads it
        (b'{"x":1e400}', {"x": math.inf}),  # past a double's range
        (b'"\\ud800"', "\ud800"),  # a lone surrogate
        ('{"x":1}'.encode("utf-16"), {"x": 1}),  # another encoding than UTF-8
    ],
)
def test_documents_msgspec_refuses_are_read_by_the_json_module(raw: bytes, value: Any) -> None:
    got = codec.loads(raw)
    assert repr(got) == repr(value)


def test_what_neither_parser_reads_raises_a_json_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        codec.loads(b'{"x": [1, 2')


def test_messages_say_nothing_with_null_and_read_back_whole() -> None:
    task = Task(id="t", kind="execute", input={"n": 1}, namespace="ns", agent="a", created_at=1.5)
    assert b"null" not in task.to_json()
    assert Task.from_json(task.to_json()) == task
    result = Result("t", 1, True, output={"n": 1}, agent="a", finished_at=2.5)
    assert b"null" not in result.to_json()
    assert Result.from_json(result.to_json()) == result


def test_a_nan_in_an_output_is_refused_when_sent_and_malformed_when_read() -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        Result("t", 1, True, output={"score": math.nan}).to_json()
    raw = json.dumps({"task_id": "t", "attempt": 1, "ok": True, "quality": math.nan}).encode()
    with pytest.raises(MalformedMessage, match="finite"):
        Result.from_json(raw)
