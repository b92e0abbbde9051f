"""Python backend: ``module:function``, sync (in a worker thread) or async, called with the task."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from podium.agent.backends.base import BackendError, BackendOutput, TaskLike, from_value
from podium.api.agent import PythonBackend


def load_entrypoint(entrypoint: str) -> Callable[..., Any]:
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"python backend: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise BackendError(f"python backend: {module_name!r} has no callable {attr!r}")
    return fn


class PythonRunner:
    """The function may declare ``fn.kinds = {"execute", ...}``; other kinds get the runtime's defaults.

    Raising ``NotImplementedError`` for a kind has the same effect, decided per task.
    """

    name = "python"

    def __init__(self, spec: PythonBackend) -> None:
        self.entrypoint = spec.entrypoint
        self.timeout_seconds: int | None = None
        self.fn: Callable[..., Any] | None = None

    async def start(self) -> None:
        self.fn = load_entrypoint(self.entrypoint)

    def handles(self, kind: str) -> bool:
        kinds = getattr(self.fn, "kinds", None)
        return kinds is None or kind in kinds

    async def run(self, task: TaskLike) -> BackendOutput:
        if self.fn is None:
            await self.start()
        assert self.fn is not None
        if inspect.iscoroutinefunction(self.fn):
            value = await self.fn(task)
        else:
            # A thread cannot be cancelled: on timeout the result is dropped and the thread runs to its end.
            value = await asyncio.to_thread(self.fn, task)
            if inspect.isawaitable(value):
                value = await value
        return from_value(value)

    async def close(self) -> None:
        return None
