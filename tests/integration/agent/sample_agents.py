"""Python-backend functions used by the agent tests (imported by `podium agent` subprocesses too)."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def async_double(task: Any) -> dict[str, Any]:
    return {"output": task.input * 2, "tokens": 5}


def trace_context(task: Any) -> str:
    """The trace context the task arrived with: what a caller's span hands on."""
    return str(task.traceparent)


def crash(task: Any) -> Any:
    raise ValueError(f"cannot handle {task.input!r}")


async def sleepy(task: Any) -> Any:
    """Sleeps `input` seconds (async, cancellable); negative input raises."""
    seconds = float(task.input)
    if seconds < 0:
        raise RuntimeError("negative sleep requested")
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def block_loop(task: Any) -> Any:
    """Blocks the event loop: what a careless async agent does. The liveness probe must notice."""
    time.sleep(float(task.input))  # noqa: ASYNC251
    return "unblocked"


def sync_sleep(task: Any) -> Any:
    """A sync agent stuck in a call no one can interrupt."""
    time.sleep(float(task.input))
    return {"slept": task.input}
