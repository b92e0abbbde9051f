"""The python backend of the reliability tests' `podium agent` processes (imported by them by entrypoint)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any


async def work(task: Any) -> Any:
    """Sleeps ``input["ms"]`` milliseconds and answers ``input["n"]``; ``input["poison"]`` kills the replica at once
    (SIGKILL, as a segfault or the OOM killer would), every time it is delivered."""
    data = task.input
    if data.get("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.sleep(float(data.get("ms", 0)) / 1000)
    return {"n": data.get("n")}
