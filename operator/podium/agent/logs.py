"""Logging for `podium agent`: one JSON object per line (or plain text), task fields on every task line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Fields carried from `extra=` into the JSON line: which task, which orchestration, which agent.
CONTEXT_FIELDS = (
    "agent",
    "replica",
    "namespace",
    "task_id",
    "kind",
    "attempt",
    "orchestration",
    "outcome",
    "duration_ms",
)


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{n}={record.__dict__[n]}" for n in CONTEXT_FIELDS if record.__dict__.get(n) is not None)
        base = f"{self.formatTime(record)} {record.levelname:<7} {record.getMessage()}"
        text = f"{base} [{extras}]" if extras else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(log_format: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print a line per probe every few seconds.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
