"""podium.demo.lint, the example command agent: ruff sees the source the task carries, not the task's JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podium.demo.lint import InputError, findings, source_of

SOURCE = "import os\n\ndef average(values):\n    return sum(values) / len(values)\n"


def lint(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podium.demo.lint", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_source_field_of_a_json_input_is_linted_not_the_json() -> None:
    done = lint(json.dumps({"source": SOURCE}), "--select", "E,F,B")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"source": SOURCE, "findings": [{"line": 1, "code": "F401", "message": "`os` imported but unused"}]}


def test_a_plain_text_input_is_the_source() -> None:
    done = lint(SOURCE, "--select", "F")
    assert done.returncode == 0, done.stderr
    assert [f["code"] for f in json.loads(done.stdout)["findings"]] == ["F401"]


def test_an_input_without_source_fails_and_says_what_to_send() -> None:
    done = lint(json.dumps({"code": SOURCE}))
    assert done.returncode == 2
    assert 'give {"source": "<code>"}' in done.stderr


def test_a_bad_ruff_flag_fails_with_ruffs_own_message() -> None:
    done = lint(json.dumps({"source": SOURCE}), "--no-such-flag")
    assert done.returncode == 2 and "--no-such-flag" in done.stderr


def test_source_of_reads_json_objects_strings_and_raw_text() -> None:
    assert source_of(json.dumps({"source": "x = 1\n"})) == "x = 1\n"
    assert source_of(json.dumps("x = 1\n")) == "x = 1\n"
    assert source_of("x = (\n") == "x = (\n"  # not JSON: the text itself
    for empty in ("", "  \n", json.dumps({"source": " "}), json.dumps([1, 2])):
        with pytest.raises(InputError):
            source_of(empty)


def test_findings_keep_line_code_and_message_in_line_order_and_are_bounded() -> None:
    def item(row: int, code: str | None) -> dict[str, object]:
        return {"location": {"row": row, "column": 1}, "code": code, "message": f"m{row}", "url": "https://..."}

    rows = findings([item(3, "E711"), item(1, "F401"), item(2, None)])
    assert rows == [
        {"line": 1, "code": "F401", "message": "m1"},
        {"line": 2, "code": "syntax", "message": "m2"},
        {"line": 3, "code": "E711", "message": "m3"},
    ]
    assert len(findings([item(i, "E501") for i in range(1, 100)])) == 20
