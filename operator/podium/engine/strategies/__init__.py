"""The seven strategies. Each is one module with ``async def run(ctx, spec, input) -> StrategyOutcome``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from podium.api.orchestration import STRATEGY_BLOCKS

# One module per strategy, named like its spec block (the API already maps wire name -> block name).
MODULES = STRATEGY_BLOCKS


@dataclass
class StrategyOutcome:
    result: Any
    degraded: bool = False
    notes: list[str] = field(default_factory=list)


class StrategyFailed(Exception):
    """The strategy cannot produce a result; the message says why, for the orchestration's status."""


StrategyRun = Callable[..., Awaitable[StrategyOutcome]]


def get(strategy: str) -> StrategyRun:
    try:
        module = MODULES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(MODULES)}") from None
    run: StrategyRun = importlib.import_module(f"podium.engine.strategies.{module}").run
    return run
