"""ruff as a command agent: lint the Python source a task carries, not the task's JSON.

The command backend writes a task's input to the program's stdin, as JSON when it is an object. ruff reading that
directly lints the JSON (``B018 useless expression`` instead of the ``F401`` in the code). This wrapper takes the
source out of the input (its ``source`` field, or the input itself when it is plain text), runs ``ruff check`` on
that text with the arguments it was given, and prints::

    {"source": "<the source>", "findings": [{"line": 1, "code": "F401", "message": "`os` imported but unused"}]}

so the next pipeline stage (a reviewer) sees the code and what ruff found. As an Agent::

    backend: {command: {args: [python, -m, podium.demo.lint, --select, "E,F,B"]}}
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

# A pipeline's next stage reads these; a snippet with hundreds of findings would swamp a model's prompt.
MAX_FINDINGS = 20


class InputError(ValueError):
    """The task's input holds no source text; the message says what to send."""


def source_of(stdin: str) -> str:
    """The source text of a task's input: the ``source`` field of a JSON object, else the text as it came."""
    try:
        value: Any = json.loads(stdin)
    except json.JSONDecodeError:
        value = stdin  # the input was a string: the backend wrote it as is
    if isinstance(value, dict):
        value = value.get("source")
    if not isinstance(value, str) or not value.strip():
        raise InputError('the task input has no Python source: give {"source": "<code>"} or the code as a string')
    return value


def findings(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ruff's JSON report, reduced to what a reader needs: line, rule code and message, in line order."""
    rows = [
        {"line": int(item["location"]["row"]), "code": item.get("code") or "syntax", "message": item["message"]}
        for item in report
    ]
    return sorted(rows, key=lambda r: (r["line"], r["code"]))[:MAX_FINDINGS]


def ruff_argv(extra: list[str]) -> list[str]:
    """The same interpreter's ruff (the agent image and the venv install it next to podium), with no configuration
    file: the rules are ruff's defaults, or what ``extra`` selects."""
    fixed = ["check", "--isolated", "--output-format=json", "--exit-zero", "--stdin-filename=input.py"]
    return [sys.executable, "-m", "ruff", *fixed, *extra, "-"]


def main(argv: list[str] | None = None) -> int:
    extra = sys.argv[1:] if argv is None else argv
    try:
        source = source_of(sys.stdin.read())
    except InputError as exc:
        print(f"podium.demo.lint: {exc}", file=sys.stderr)
        return 2
    done = subprocess.run(ruff_argv(extra), input=source, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"ruff exited with code {done.returncode}: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return done.returncode
    print(json.dumps({"source": source, "findings": findings(json.loads(done.stdout or "[]"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
