"""What a task may still spend of its run's budget: the engine writes it into the task at dispatch
(``Task.meta["budget"]``), and an agent whose work takes several model calls (the llm tool loop) stops when it has
spent it. Pure data; the run's limits and usage are the engine's (podium.engine.budget)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

META_KEY = "budget"


@dataclass(frozen=True)
class Allowance:
    """Tokens and cost left in the run when the task was dispatched; None: that limit is not set. Tasks running
    at the same time each see the whole remainder, so together they may overshoot it by what they spend at once;
    the engine's check before its next dispatch still stops the run."""

    tokens: int | None = None
    cost: float | None = None

    @property
    def bounded(self) -> bool:
        return self.tokens is not None or self.cost is not None

    def to_meta(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "cost": self.cost}

    def spent(self, tokens: int, cost: float) -> str | None:
        """Which limit ``tokens`` and ``cost`` used so far have reached, in words; None while there is room."""
        if self.tokens is not None and tokens >= self.tokens:
            return f"the run's token budget is spent ({tokens} tokens used of the {self.tokens} left at dispatch)"
        if self.cost is not None and cost >= self.cost:
            return f"the run's cost budget is spent ({cost:g} used of the {self.cost:g} left at dispatch)"
        return None


def of_task(meta: dict[str, Any]) -> Allowance:
    """The allowance a task carries (none: unbounded). Malformed values are ignored rather than failing the task:
    the engine still enforces the run's limits between tasks."""
    raw = meta.get(META_KEY)
    if not isinstance(raw, dict):
        return Allowance()
    tokens, cost = raw.get("tokens"), raw.get("cost")
    return Allowance(
        tokens=max(0, tokens) if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        cost=max(0.0, float(cost)) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )
