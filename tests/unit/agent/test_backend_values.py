from __future__ import annotations

import pytest

from podium.agent.backends.base import BackendError, BackendOutput, from_value, parse_text, tail


def test_envelope_is_unwrapped() -> None:
    assert from_value({"output": [1, 2], "quality": 0.5, "tokens": 7}) == BackendOutput([1, 2], 0.5, 7)


def test_dict_with_other_keys_is_plain_output() -> None:
    value = {"output": 1, "note": "x"}
    assert from_value(value) == BackendOutput(value)


@pytest.mark.parametrize(
    "bad", [{"output": 1, "quality": 1.5}, {"output": 1, "tokens": -1}, {"output": 1, "quality": "hi"}]
)
def test_bad_envelope_is_an_error(bad: dict[str, object]) -> None:
    with pytest.raises(BackendError):
        from_value(bad)


def test_text_or_json() -> None:
    assert parse_text(' {"a": 1}\n') == {"a": 1}
    assert parse_text("[1,2]") == [1, 2]
    assert parse_text("hello world\n") == "hello world"
    assert parse_text("{not json") == "{not json"
    assert parse_text("42") == "42"  # bare numbers stay text: "42" from `wc` is a word, not a JSON value


def test_tail_keeps_the_end() -> None:
    assert tail("x" * 5000 + "END", 10).endswith("END")
