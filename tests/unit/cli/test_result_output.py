"""`podium run result -o yaml`: a model's multi-line answer prints as the text it is; JSON stays the default."""

from __future__ import annotations

import json
from typing import Any

import yaml

from podium.cli.orchestrations import build_parser, render_result

RESULT = {
    "answer": "Unit tests catch bugs early.\nThey also document what the code should do.\n",
    "score": 0.2,
    "knowledge": [{"agent": "editor", "solution": "Learn Python: a week of small steps"}],
}


def test_yaml_prints_multi_line_text_as_a_block_and_reads_back_the_same() -> None:
    text = render_result(RESULT, "yaml")
    assert "answer: |-\n  Unit tests catch bugs early.\n  They also document what the code should do." in text
    assert "\\n" not in text
    back = yaml.safe_load(text)
    assert back["answer"] == RESULT["answer"].strip()  # only the surrounding whitespace goes
    assert back["knowledge"] == RESULT["knowledge"] and back["score"] == RESULT["score"]


def test_a_line_ending_in_spaces_does_not_turn_the_block_into_an_escaped_line() -> None:
    text = render_result({"plan": "Choose a restaurant. \n\nThen write the invitation.  "}, "yaml")
    assert text == "plan: |-\n  Choose a restaurant.\n\n  Then write the invitation."


def test_json_is_the_default_and_unchanged() -> None:
    args = build_parser().parse_args(["result", "run-1"])
    assert args.output == "json"
    assert json.loads(render_result(RESULT)) == RESULT


def test_an_unknown_output_format_is_refused() -> None:
    import pytest

    with pytest.raises(SystemExit):
        build_parser().parse_args(["result", "run-1", "-o", "xml"])


def test_namespace_and_redis_url_go_before_or_after_the_command_as_with_kubectl(monkeypatch: Any) -> None:
    monkeypatch.delenv("PODIUM_REDIS_URL", raising=False)
    parse = build_parser().parse_args
    default = parse(["state", "run-1"])
    assert (default.namespace, default.redis_url) == ("default", "redis://127.0.0.1:6379/0")
    before = parse(["-n", "team", "--redis-url", "redis://r:6379/0", "history", "run-1"])
    after = parse(["history", "run-1", "-n", "team", "--redis-url", "redis://r:6379/0"])
    assert (before.namespace, before.redis_url) == (after.namespace, after.redis_url) == ("team", "redis://r:6379/0")
    # Given on both sides, the one after the command wins.
    assert parse(["-n", "a", "result", "run-1", "--namespace", "b"]).namespace == "b"
