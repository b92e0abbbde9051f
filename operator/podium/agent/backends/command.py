"""Command backend: one process per task; input on stdin (or as the last argument), JSON or text on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from typing import Any

from podium.agent.backends.base import BackendError, BackendOutput, TaskLike, from_value, parse_text, tail
from podium.api.agent import CommandBackend

# After SIGTERM to the process group, how long the program gets to exit before SIGKILL.
KILL_GRACE_SECONDS = 2.0


def encode_input(value: Any) -> str:
    # Raw strings go as they are so that tools reading source text (ruff, linters, wc) work unchanged.
    return value if isinstance(value, str) else json.dumps(value)


class CommandRunner:
    name = "command"

    def __init__(self, spec: CommandBackend) -> None:
        self.spec = spec
        self.timeout_seconds = spec.timeout_seconds

    async def start(self) -> None:
        program = self.spec.args[0]
        if shutil.which(program) is None and not os.access(program, os.X_OK):
            raise BackendError(f"command backend: {program!r} is not on PATH nor an executable file")

    def handles(self, kind: str) -> bool:
        # A program written for the work (a linter, a model) knows nothing of auction prices: bids are defaulted.
        return kind != "bid"

    async def run(self, task: TaskLike) -> BackendOutput:
        data = encode_input(task.input)
        args = list(self.spec.args)
        if self.spec.input_mode == "args":
            args.append(data)
        env = {
            **os.environ,
            **(self.spec.env or {}),
            "PODIUM_TASK_ID": task.id,
            "PODIUM_TASK_KIND": str(task.kind),
            "PODIUM_TASK_ATTEMPT": str(task.attempt),
            "PODIUM_ORCHESTRATION": task.orchestration,
        }
        if task.output_schema is not None:
            env["PODIUM_TASK_SCHEMA"] = json.dumps(task.output_schema)
        if task.context is not None:
            env["PODIUM_TASK_CONTEXT"] = json.dumps(task.context)
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if self.spec.input_mode == "stdin" else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.spec.working_dir,
            start_new_session=True,  # its own process group, so a timeout kills the children too
        )
        try:
            stdin = data.encode() if self.spec.input_mode == "stdin" else None
            stdout, stderr = await proc.communicate(stdin)
        finally:
            if proc.returncode is None:
                await _kill_group(proc)
        if proc.returncode != 0:
            detail = tail(stderr.decode(errors="replace")) or tail(stdout.decode(errors="replace"))
            raise BackendError(f"{args[0]} exited with code {proc.returncode}: {detail or '(no output)'}")
        return from_value(parse_text(stdout.decode(errors="replace")))

    async def close(self) -> None:
        return None


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Stop the whole process group: TERM, a short grace, then KILL. Shielded from the caller's cancellation."""

    async def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    await asyncio.shield(stop())
