import pytest

from podium.api.orchestration import AssignmentWeights, BalanceWeights, BidWeights
from podium.engine.directory import AgentInfo
from podium.engine.selection import (
    Bid,
    assignment_score,
    balance_score,
    bid_scores,
    capability_match,
    rank,
    winner,
)
from podium.engine.stats import RECENT, Outcome, PerfStats, RecentView


def agent(name: str, load: float = 0.0, ready: int = 1, **caps: float) -> AgentInfo:
    return AgentInfo(name=name, role="worker", capabilities=caps, load=load, ready_replicas=ready)


def test_capability_match_is_mean_level_and_one_when_nothing_required() -> None:
    a = agent("a", python=0.8, security=0.4)
    assert capability_match(a, ["python", "security"]) == pytest.approx(0.6)
    assert capability_match(a, ["go"]) == 0.0
    assert capability_match(a, []) == 1.0


def test_central_command_weights_are_half_capability_then_performance_then_load() -> None:
    w = AssignmentWeights()
    assert assignment_score(1, 0, 1, w) == pytest.approx(0.5)
    assert assignment_score(0, 1, 1, w) == pytest.approx(0.3)
    assert assignment_score(0, 0, 0, w) == pytest.approx(0.2)


def test_load_balancer_weights_are_the_patterns_load_capability_recent_success() -> None:
    w = BalanceWeights()
    assert (w.load, w.capability, w.success) == (0.4, 0.4, 0.2)
    assert balance_score(0.0, 0, 0, w) == pytest.approx(0.4)  # idle: all of load's weight
    assert balance_score(1.0, 1, 0, w) == pytest.approx(0.4)  # saturated but expert
    assert balance_score(1.0, 0, 1, w) == pytest.approx(0.2)
    # Weights are relative: doubling them all changes nothing; one alone decides alone.
    assert balance_score(0.5, 0.3, 0.9, BalanceWeights(load=0.8, capability=0.8, success=0.4)) == pytest.approx(
        balance_score(0.5, 0.3, 0.9, w)
    )
    assert balance_score(0.5, 0.3, 0.9, BalanceWeights(load=0, capability=0, success=1)) == pytest.approx(0.9)


def test_balance_weights_per_target_change_who_ranks_first() -> None:
    idle_novice = agent("novice", load=0.0, python=0.2)
    busy_expert = agent("expert", load=0.9, python=1.0)
    by_default = rank([busy_expert, idle_novice], {}, required=["python"])
    assert [a.name for a in by_default] == ["novice", "expert"]  # 0.4 + 0.08 + 0.1 beats 0.04 + 0.4 + 0.1
    skill_first = BalanceWeights(load=0.1, capability=0.8, success=0.1)
    assert rank([idle_novice, busy_expert], {}, required=["python"], weights=skill_first)[0].name == "expert"


def test_recent_success_is_a_window_not_the_whole_history() -> None:
    # Failed a lot long ago, succeeded the last ten times: it ranks above an agent that just started failing.
    recovered = PerfStats(completed=20, failed=80, recent=(True,) * 10)
    slipping = PerfStats(completed=95, failed=5, recent=(False,) * 5 + (True,) * 5)
    assert recovered.success_rate == 0.2 and recovered.recent_success == pytest.approx(11 / 12)
    assert slipping.recent_success == pytest.approx(6 / 12)
    agents = [agent("slipping"), agent("recovered")]
    assert [a.name for a in rank(agents, {"recovered": recovered, "slipping": slipping})] == ["recovered", "slipping"]
    assert PerfStats().recent_success == 0.5  # a newcomer counts as even


def test_rank_weighs_free_capacity_as_much_as_capability() -> None:
    agents = [agent("weak", python=0.2), agent("strong", python=0.9), agent("busy", load=1.0, python=0.9)]
    # strong 0.4 + 0.36 + 0.1; weak 0.4 + 0.08 + 0.1; busy 0 + 0.36 + 0.1
    assert [a.name for a in rank(agents, {}, required=["python"])] == ["strong", "weak", "busy"]


def test_rank_spreads_equal_agents_by_work_already_assigned() -> None:
    agents = [agent("a"), agent("b")]
    assert rank(agents, {}, assigned={"a": 3})[0].name == "b"
    assert rank(agents, {}, assigned={"b": 3})[0].name == "a"


def test_rank_puts_agents_with_bad_record_then_waking_then_unavailable_ones_last() -> None:
    flaky = PerfStats(completed=1, failed=9, recent=(False,) * 9 + (True,))
    good = PerfStats(completed=9, failed=1, recent=(True,) * 9 + (False,))
    waking = AgentInfo(name="waking", role="worker", replicas=0, ready_replicas=0, autoscaled=True)
    down = AgentInfo(name="down", role="worker", replicas=0, ready_replicas=0)
    agents = [down, waking, agent("flaky"), agent("good")]
    assert [a.name for a in rank(agents, {"flaky": flaky, "good": good})] == ["good", "flaky", "waking", "down"]


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


def test_a_run_s_view_of_recent_outcomes_adds_its_own_and_is_read_again_when_older_than_its_max_age() -> None:
    view = RecentView(max_age=2.0)
    assert view.due(["a", "b"], 100.0) == ["a", "b"]  # never read
    view.read("a", PerfStats(recent=(True, False)), 100.0)
    view.add("a", [Outcome(False, 1.0), Outcome(True, 1.0)])  # oldest first: the success is the newest
    view.add("b", [Outcome(True, 1.0)])  # never read: nothing to add to, it is read when due
    assert view.stats("a").recent == (True, False, True, False)
    assert view.stats("b").recent == ()
    assert view.due(["a", "b"], 102.0) == ["b"]
    assert view.due(["a", "b"], 102.5) == ["a", "b"]
    view.add("a", [Outcome(True, 1.0)] * (RECENT + 3))
    assert view.stats("a").recent == (True,) * RECENT  # as long as the list in Redis, never longer
