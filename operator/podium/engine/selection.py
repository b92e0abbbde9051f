"""Scoring agents: load balancing, centralCommand's weighted assignment and market bids. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from podium.api.orchestration import AssignmentWeights, BidWeights
from podium.engine.directory import AgentInfo
from podium.engine.stats import PerfStats

DEFAULT_WEIGHTS = AssignmentWeights()


def capability_match(agent: AgentInfo, required: Sequence[str]) -> float:
    """Mean proficiency over the required capabilities; 1.0 when nothing in particular is required."""
    if not required:
        return 1.0
    return sum(agent.level(c) for c in required) / len(required)


def weighted_score(capability: float, performance: float, load: float, weights: AssignmentWeights) -> float:
    """capability, performance in [0, 1]; load in [0, 1] (1 = saturated). Higher is better, result in [0, 1]."""
    total = weights.capability + weights.performance + weights.load
    free = 1.0 - min(max(load, 0.0), 1.0)
    return (weights.capability * capability + weights.performance * performance + weights.load * free) / total


def effective_load(agent: AgentInfo, assigned: int) -> float:
    """Heartbeat load plus what this run has already handed the agent and not yet seen finish."""
    capacity = max(agent.concurrency * max(agent.ready_replicas, 1), 1)
    return min(1.0, agent.load + assigned / capacity)


def rank(
    agents: Sequence[AgentInfo],
    stats: dict[str, PerfStats],
    *,
    required: Sequence[str] = (),
    assigned: dict[str, int] | None = None,
    weights: AssignmentWeights = DEFAULT_WEIGHTS,
) -> list[AgentInfo]:
    """Agents best first by capability match, past success and free capacity.

    Agents with no ready replica go last rather than away: their queue is durable, and a Deployment that is
    still scaling up is better than failing the step.
    """
    assigned = assigned or {}

    def key(a: AgentInfo) -> tuple[bool, float, str]:
        perf = stats.get(a.name, PerfStats()).expected_success
        score = weighted_score(capability_match(a, required), perf, effective_load(a, assigned.get(a.name, 0)), weights)
        return (not a.ready, -score, a.name)

    return sorted(agents, key=key)


@dataclass(frozen=True)
class Bid:
    agent: str
    price: float
    seconds: float
    capability: float  # match of the bidder's capabilities to the task, in [0, 1]
    reputation: float  # in [0, 1]


def bid_scores(bids: Sequence[Bid], weights: BidWeights) -> dict[str, float]:
    """Each bid's score in [0, 1]. Price and time are relative to the best bid of the auction (cheapest = 1)."""
    if not bids:
        return {}
    total = weights.price + weights.capability + weights.reputation + weights.time
    low_price = min(b.price for b in bids)
    low_time = min(b.seconds for b in bids)

    def relative(best: float, value: float) -> float:
        return 1.0 if value <= 0 else (best / value if best > 0 else 0.0)

    return {
        b.agent: (
            weights.price * relative(low_price, b.price)
            + weights.capability * b.capability
            + weights.reputation * b.reputation
            + weights.time * relative(low_time, b.seconds)
        )
        / total
        for b in bids
    }


def winner(
    bids: Sequence[Bid], weights: BidWeights, *, reserve_price: float | None, min_score: float
) -> tuple[Bid | None, dict[str, float]]:
    """The best acceptable bid (price within reserve, score at least min_score) and every bid's score."""
    scores = bid_scores(bids, weights)
    acceptable = [
        b for b in bids if (reserve_price is None or b.price <= reserve_price) and scores[b.agent] >= min_score
    ]
    if not acceptable:
        return None, scores
    best = max(acceptable, key=lambda b: (scores[b.agent], -b.price, b.agent))
    return best, scores
