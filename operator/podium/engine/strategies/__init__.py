"""The seven strategies. Each is one module with ``async def run(ctx, spec, input) -> StrategyOutcome``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from podium.api.orchestration import STRATEGY_BLOCKS, PlannedTask

# One module per strategy, named like its spec block (the API already maps wire name -> block name).
MODULES = STRATEGY_BLOCKS


@dataclass
class StrategyOutcome:
    result: Any
    degraded: bool = False
    notes: list[str] = field(default_factory=list)


class StrategyFailed(Exception):
    """The strategy cannot produce a result; the message says why, for the orchestration's status."""


def work_input(task: PlannedTask, input: Any) -> dict[str, Any]:
    """What the agent doing a planned task (centralCommand, market) receives: the task's own input (else the
    run's), its name and its description."""
    payload = {"input": input if task.input is None else task.input, "task": task.name}
    if task.description:
        payload["description"] = task.description
    return payload


StrategyRun = Callable[..., Awaitable[StrategyOutcome]]


def get(strategy: str) -> StrategyRun:
    try:
        module = MODULES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(MODULES)}") from None
    run: StrategyRun = importlib.import_module(f"podium.engine.strategies.{module}").run
    return run
