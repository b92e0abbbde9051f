"""Scoring agents: load balancing, centralCommand's weighted assignment and market bids. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from podium.api.orchestration import AssignmentWeights, BalanceWeights, BidWeights
from podium.engine import availability
from podium.engine.directory import AgentInfo
from podium.engine.stats import NO_RECORD, PerfStats

DEFAULT_BALANCE = BalanceWeights()


def capability_match(agent: AgentInfo, required: Sequence[str]) -> float:
    """Mean proficiency over the required capabilities; 1.0 when nothing in particular is required."""
    if not required:
        return 1.0
    return sum(agent.level(c) for c in required) / len(required)


def weighted_mean(parts: Sequence[tuple[float, float]]) -> float:
    """The mean of ``(weight, value)`` pairs by their weights (relative: divided by their sum)."""
    total = acc = 0.0
    for weight, value in parts:  # a loop, not two sums over generators: every step ranks its candidates with it
        total += weight
        acc += weight * value
    return acc / total if total > 0 else 0.0


def free(load: float) -> float:
    """Free capacity from a load in [0, 1] (1 = saturated)."""
    return 1.0 - min(max(load, 0.0), 1.0)


def assignment_score(capability: float, performance: float, load: float, weights: AssignmentWeights) -> float:
    """centralCommand's score of an agent for a task: capability, performance (past success) and load in
    [0, 1]. Higher is better, result in [0, 1]."""
    return weighted_mean(
        [(weights.capability, capability), (weights.performance, performance), (weights.load, free(load))]
    )


def balance_score(load: float, capability: float, success: float, weights: BalanceWeights) -> float:
    """The load balancer's score of an agent for a step: load, capability match and recent success in [0, 1].
    Higher is better, result in [0, 1]."""
    return weighted_mean([(weights.load, free(load)), (weights.capability, capability), (weights.success, success)])


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
    weights: BalanceWeights = DEFAULT_BALANCE,
) -> list[AgentInfo]:
    """Agents best first: available ones before waking ones before unavailable ones, each group by free
    capacity, capability match and recent success (:func:`balance_score`)."""
    assigned = assigned or {}

    def key(a: AgentInfo) -> tuple[int, float, str]:
        success = stats.get(a.name, NO_RECORD).recent_success
        load = effective_load(a, assigned.get(a.name, 0))
        score = balance_score(load, capability_match(a, required), success, weights)
        return (availability.of(a).state, -score, a.name)

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
    low_price = min(b.price for b in bids)
    low_time = min(b.seconds for b in bids)

    def relative(best: float, value: float) -> float:
        return 1.0 if value <= 0 else (best / value if best > 0 else 0.0)

    return {
        b.agent: weighted_mean(
            [
                (weights.price, relative(low_price, b.price)),
                (weights.capability, b.capability),
                (weights.reputation, b.reputation),
                (weights.time, relative(low_time, b.seconds)),
            ]
        )
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
