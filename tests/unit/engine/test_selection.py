import pytest

from podium.api.orchestration import AssignmentWeights, BidWeights
from podium.engine.directory import AgentInfo
from podium.engine.selection import Bid, bid_scores, capability_match, rank, weighted_score, winner
from podium.engine.stats import PerfStats


def agent(name: str, load: float = 0.0, ready: int = 1, **caps: float) -> AgentInfo:
    return AgentInfo(name=name, role="worker", capabilities=caps, load=load, ready_replicas=ready)


def test_capability_match_is_mean_level_and_one_when_nothing_required() -> None:
    a = agent("a", python=0.8, security=0.4)
    assert capability_match(a, ["python", "security"]) == pytest.approx(0.6)
    assert capability_match(a, ["go"]) == 0.0
    assert capability_match(a, []) == 1.0


def test_default_weights_are_half_capability_then_performance_then_load() -> None:
    w = AssignmentWeights()
    assert weighted_score(1, 0, 1, w) == pytest.approx(0.5)
    assert weighted_score(0, 1, 1, w) == pytest.approx(0.3)
    assert weighted_score(0, 0, 0, w) == pytest.approx(0.2)


def test_rank_prefers_capable_then_idle_then_successful() -> None:
    agents = [agent("weak", python=0.2), agent("strong", python=0.9), agent("busy", load=1.0, python=0.9)]
    assert [a.name for a in rank(agents, {}, required=["python"])] == ["strong", "busy", "weak"]


def test_rank_spreads_equal_agents_by_work_already_assigned() -> None:
    agents = [agent("a"), agent("b")]
    assert rank(agents, {}, assigned={"a": 3})[0].name == "b"
    assert rank(agents, {}, assigned={"b": 3})[0].name == "a"


def test_rank_puts_agents_with_bad_record_and_no_ready_replica_last() -> None:
    flaky = PerfStats(completed=1, failed=9)
    good = PerfStats(completed=9, failed=1)
    agents = [agent("flaky"), agent("good"), agent("down", ready=0)]
    assert [a.name for a in rank(agents, {"flaky": flaky, "good": good})] == ["good", "flaky", "down"]


def test_bid_scores_use_weights_with_cheapest_and_fastest_at_one() -> None:
    bids = [Bid("cheap", 1.0, 10, 0.5, 0.5), Bid("pricey", 2.0, 5, 1.0, 1.0)]
    s = bid_scores(bids, BidWeights())
    assert s["cheap"] == pytest.approx(0.3 * 1 + 0.4 * 0.5 + 0.2 * 0.5 + 0.1 * 0.5)
    assert s["pricey"] == pytest.approx(0.3 * 0.5 + 0.4 * 1.0 + 0.2 * 1.0 + 0.1 * 1)


def test_winner_respects_reserve_price_and_min_score() -> None:
    bids = [Bid("cheap", 1.0, 10, 0.5, 0.5), Bid("pricey", 2.0, 5, 1.0, 1.0)]
    best, _ = winner(bids, BidWeights(), reserve_price=None, min_score=0.0)
    assert best is not None and best.agent == "pricey"
    best, _ = winner(bids, BidWeights(), reserve_price=1.5, min_score=0.0)
    assert best is not None and best.agent == "cheap"
    best, _ = winner(bids, BidWeights(), reserve_price=1.5, min_score=0.9)
    assert best is None
