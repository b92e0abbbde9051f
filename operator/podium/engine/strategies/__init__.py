"""The seven strategies. Each is one module with ``async def run(ctx, spec, input) -> StrategyOutcome``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from podium.api.orchestration import STRATEGY_BLOCKS, PlannedTask
from podium.engine.directory import AgentDirectory

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
# The agents a spec names for each piece of work, known before the run starts: (what, agent names).
Needs = Callable[[Any, AgentDirectory], list[tuple[str, list[str]]]]


def _module(strategy: str) -> Any:
    try:
        module = MODULES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(MODULES)}") from None
    return importlib.import_module(f"podium.engine.strategies.{module}")


def get(strategy: str) -> StrategyRun:
    run: StrategyRun = _module(strategy).run
    return run


def needs(strategy: str, spec: Any, directory: AgentDirectory) -> list[tuple[str, list[str]]]:
    """What the strategy's spec asks of which agents, for the check before the run starts (none if it names
    none: its agents are found as it goes)."""
    found: Needs | None = getattr(_module(strategy), "needs", None)
    return [] if found is None else found(spec, directory)
