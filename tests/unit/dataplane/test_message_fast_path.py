"""The fast decode paths of Task/Result accept and reject exactly what the strict validators do."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from podium.dataplane import codec
from podium.dataplane.messages import MalformedMessage, Result, Task, encode_json

_MISSING = object()
# For each field: the usual value, values of other types or out of range, and "absent".
_ODD = [None, True, False, 0, -1, 2, 10**400, 1.5, -0.0, math.inf, math.nan, "", "x", [], {}, {"k": 1}, _MISSING]

# Valid choices per field; a message is a valid one with up to two fields replaced by odd values, so
# that each check of the fast path is exercised on its own.
_TASK_OK: dict[str, list[Any]] = {
    "id": ["t-1"],
    "kind": ["execute"],
    "input": [{"n": 1}, None, _MISSING],
    "namespace": ["ns"],
    "agent": ["a"],
    "orchestration": ["", "ns/o"],
    "attempt": [1, 3],
    "timeout_seconds": [None, 2.5, 30],
    "created_at": [1.7e9, 1700000000],
    "meta": [{}, {"trace": "x"}],
    "output_schema": [None, {"type": "object"}, _MISSING],
}
_RESULT_OK: dict[str, list[Any]] = {
    "task_id": ["t-1"],
    "attempt": [1, 2],
    "ok": [True, False],
    "output": [{"n": 1}, None],
    "error": [None, "boom"],
    "quality": [None, 0.5, 1],
    "tokens": [0, 12],
    "cost": [0.0, 0.25, 1],
    "duration_ms": [0.0, 3.5, 7],
    "agent": ["a", ""],
    "replica": ["r1", ""],
    "finished_at": [1.7e9, 1700000000],
    "error_type": [None, "throttled", _MISSING],
    "retry_after": [None, 2.0, 3, _MISSING],
}


def _messages(ok: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    valid = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in ok.items()})
    odd = st.lists(st.tuples(st.sampled_from(sorted(ok)), st.sampled_from(_ODD)), max_size=2)
    return st.builds(lambda base, changes: {**base, **dict(changes)}, valid, odd)


task_fields = _messages(_TASK_OK)
result_fields = _messages(_RESULT_OK)


def _wire(fields: dict[str, Any]) -> bytes:
    # Python's json writes NaN/Infinity and huge ints, as a buggy or foreign producer might.
    return json.dumps({k: v for k, v in fields.items() if v is not _MISSING}).encode()


def _outcome(decode: Any, arg: Any) -> Any:
    try:
        value = decode(arg)
    except MalformedMessage as exc:
        return ("rejected", str(exc))
    # created_at/finished_at default to "now" when absent: compare everything else.
    out = dict(value.__dict__)
    out.pop("created_at" if isinstance(value, Task) else "finished_at")
    return ("accepted", out, {k: type(v) for k, v in value.__dict__.items()})


@settings(max_examples=600)
@given(fields=task_fields)
def test_task_fast_path_agrees_with_strict_validation(fields: dict[str, Any]) -> None:
    raw = _wire(fields)
    assert _outcome(Task.from_json, raw) == _outcome(Task._from_data, json.loads(raw))


@settings(max_examples=600)
@given(fields=result_fields)
def test_result_fast_path_agrees_with_strict_validation(fields: dict[str, Any]) -> None:
    raw = _wire(fields)
    assert _outcome(Result.from_json, raw) == _outcome(Result._from_data, json.loads(raw))


@pytest.mark.parametrize(("cls", "ok"), [(Task, _TASK_OK), (Result, _RESULT_OK)])
def test_every_single_odd_field_is_judged_as_the_strict_path_does(cls: Any, ok: dict[str, list[Any]]) -> None:
    # Exhaustive over one replaced field on every valid base: the cases a random search can miss.
    bases = [{k: v[0] for k, v in ok.items()}, {k: v[-1] for k, v in ok.items()}]
    for base in bases:
        for field in ok:
            for value in [*_ODD, *ok[field]]:
                raw = _wire({**base, field: value})
                assert _outcome(cls.from_json, raw) == _outcome(cls._from_data, json.loads(raw)), (field, value)


def test_a_task_from_the_wire_keeps_its_timestamps_and_timeout() -> None:
    task = Task(id="t", kind="plan", input=[1], namespace="ns", agent="a", timeout_seconds=1.5, created_at=12.25)
    assert Task.from_json(task.to_json()) == task


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id":"t","kind":"x","input":1,"namespace":"n","agent":"a","attempt":1,"created_at":NaN}', "finite"),
        (b'{"id":"t","kind":"x","input":1,"namespace":"n","agent":"a","timeout_seconds":-1.0}', "> 0"),
        (b'{"id":"t","kind":"x","input":1,"namespace":"n","agent":"a","created_at":1' + b"0" * 400 + b"}", "finite"),
    ],
)
def test_bad_numbers_are_malformed_not_crashes(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        Task.from_json(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(value=json_values)
@example(value=6.103515625e-05)  # written longer than Python writes it, as CI found
def test_encode_json_is_compact_standard_json(value: Any) -> None:
    # The same value back, with no whitespace outside its strings. (Not "no longer than Python's compact form": a
    # float may be written another way, 0.00006103515625 for 6.103515625e-05.)
    out = encode_json(value)
    assert json.loads(out) == codec.loads(out) == value
    assert not re.search(r"\s", re.sub(r'"(?:[^"\\]|\\.)*"', '""', out))


@pytest.mark.parametrize("bad", [{"x": math.nan}, [math.inf], {"x": object()}, {(1, 2): 1}])
def test_encode_json_refuses_what_other_parsers_cannot_read(bad: Any) -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        encode_json(bad)


def test_encode_json_refuses_a_circular_value_and_keeps_working() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json({"a": loop})
    shared = [1]
    assert encode_json({"a": shared, "b": shared}) == '{"a":[1],"b":[1]}'


def test_what_the_writers_write_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine's whole-second timeouts and a backend's whole-number costs are ints where floats are usual: the fast
    # path takes them as the strict path would (as floats), so readers never need the strict path for them.
    def strict(cls: Any, data: Any) -> Any:
        raise AssertionError(f"strict path taken for {data}")

    monkeypatch.setattr(Task, "_from_data", classmethod(strict))
    monkeypatch.setattr(Result, "_from_data", classmethod(strict))
    task = Task(id="t", kind="execute", input=1, namespace="ns", agent="a", timeout_seconds=120)
    assert Task.from_json(task.to_json()).timeout_seconds == 120.0
    result = Result("t", 1, True, quality=1, cost=0, duration_ms=5, finished_at=7, retry_after=2)
    back = Result.from_json(result.to_json())
    assert (back.quality, back.cost, back.duration_ms, back.finished_at, back.retry_after) == (1.0, 0.0, 5.0, 7.0, 2.0)
