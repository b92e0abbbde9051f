"""Answers the runtime gives for task kinds a backend does not handle (today: ``bid``).

A bid task's input names what the work needs, in any of these forms (also nested under ``task``):
``{"capability": "python"}``, ``{"capabilities": ["python", "review"]}``, ``{"requires": [...]}``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from podium.api.agent import AgentSpec

# With no history yet an agent still has to bid: a modest guess that real durations replace quickly.
DEFAULT_ETA_SECONDS = 1.0


def required_capabilities(task_input: Any) -> list[str]:
    if not isinstance(task_input, dict):
        return []
    found: list[str] = []
    for source in (task_input, task_input.get("task")):
        if not isinstance(source, dict):
            continue
        for key in ("capability", "capabilities", "requires"):
            value = source.get(key)
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
    return list(dict.fromkeys(found))


def capability_match(spec: AgentSpec, required: list[str]) -> float:
    """Mean proficiency over what is required; with no requirement, the agent's best skill (0.5 if none)."""
    if required:
        return sum(spec.capability_level(name) for name in required) / len(required)
    return max((c.level for c in spec.capabilities), default=0.5)


def bid(spec: AgentSpec, task_input: Any, *, load: float, eta_seconds: float | None) -> dict[str, Any]:
    """A market bid in the engine's bid contract (``podium.engine.contracts.bid``, which travels with the task and
    is checked by the runtime): price from pricing.perTask, estimated seconds from recent durations, confidence
    from skill and load."""
    match = capability_match(spec, required_capabilities(task_input))
    # A busy agent is less sure to deliver on time; a full one still bids, at half confidence.
    confidence = match * (1.0 - 0.5 * max(0.0, min(1.0, load)))
    return {
        "price": spec.pricing.per_task,
        "estimatedSeconds": round(eta_seconds if eta_seconds is not None else DEFAULT_ETA_SECONDS, 3),
        "confidence": round(confidence, 4),
    }


class RecentDurations:
    """A sliding window of successful task durations: the basis of eta in bids."""

    def __init__(self, size: int = 50) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def average(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None
