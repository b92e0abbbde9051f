"""The backlog autoscaler's decisions over time: scale up at once, down only after the delay, within min/max."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.api.agent import Autoscaling
from podium.operator.agents.autoscale import Policy, Window, decide, recommend


def run(policy: Policy, steps: Sequence[tuple[float, int]], start: int) -> list[int]:
    """Feed (time, backlog) rounds through decide, applying each decision as the next round's current count."""
    window: Window = ()
    current = start
    seen = []
    for now, backlog in steps:
        d = decide(window, now, backlog, current, policy)
        window, current = d.window, d.desired
        seen.append(current)
    return seen


def test_recommendation_is_backlog_over_target_rounded_up_within_bounds() -> None:
    p = Policy(min_replicas=1, max_replicas=5, target_backlog_per_replica=10, scale_down_delay_seconds=60)
    assert [recommend(b, p) for b in (0, 1, 10, 11, 25, 49, 50, 51, 1000)] == [1, 1, 1, 2, 3, 5, 5, 5, 5]


def test_min_zero_scales_to_zero_only_when_empty() -> None:
    p = Policy(min_replicas=0, max_replicas=3, target_backlog_per_replica=100, scale_down_delay_seconds=0)
    assert recommend(0, p) == 0
    assert recommend(1, p) == 1  # one task waiting must wake the agent up, however large the target


def test_scale_up_is_immediate_and_scale_down_waits_for_the_delay() -> None:
    p = Policy(min_replicas=0, max_replicas=3, target_backlog_per_replica=2, scale_down_delay_seconds=10)
    steps = [(0, 0), (2, 6), (4, 5), (6, 2), (8, 0), (12, 0), (15, 0), (16, 0), (17, 0), (20, 0)]
    # 6 tasks -> 3 at once; the backlog drains at t=8 but the 3 recommended at t=4 (5 tasks) holds until t>14,
    # the 1 recommended at t=6 until t>16.
    assert run(p, steps, start=0) == [0, 3, 3, 3, 3, 3, 1, 1, 0, 0]


def test_a_burst_inside_the_window_resets_the_scale_down() -> None:
    p = Policy(min_replicas=1, max_replicas=10, target_backlog_per_replica=1, scale_down_delay_seconds=30)
    steps = [(0, 4), (10, 0), (20, 4), (30, 0), (45, 0), (51, 0)]
    assert run(p, steps, start=1) == [4, 4, 4, 4, 4, 1]


def test_a_higher_recommendation_holds_while_a_lower_one_follows() -> None:
    p = Policy(min_replicas=0, max_replicas=10, target_backlog_per_replica=1, scale_down_delay_seconds=10)
    steps = [(0, 8), (5, 3), (11, 3), (14, 0), (16, 0), (25, 0)]
    # t=11: 8 (t=0) left the window, 3 (t=5) is the highest left; t=16: 3 (t=11) still inside; t=25: all zero.
    assert run(p, steps, start=0) == [8, 8, 3, 3, 3, 0]


def test_no_scale_up_while_the_replicas_running_cannot_take_work() -> None:
    # An llm Agent whose model server is down: its tasks pile up in the inbox, but more replicas would be down the
    # same way. It holds its count (waking from zero still starts one: that replica is what finds the problem), and
    # scales for the backlog again once it is not stuck.
    p = Policy(min_replicas=0, max_replicas=5, target_backlog_per_replica=2, scale_down_delay_seconds=60)
    woken = decide((), 0, 9, 0, p, stuck=True)
    assert woken.desired == 5  # nothing is running yet: nothing can be stuck
    held = decide((), 0, 9, 1, p, stuck=True)
    assert (held.recommended, held.desired) == (5, 1)
    assert decide(held.window, 5, 9, 1, p).desired == 5


def test_caps_and_floor_apply_to_the_count_a_user_set_by_hand() -> None:
    p = Policy(min_replicas=2, max_replicas=4, target_backlog_per_replica=5, scale_down_delay_seconds=300)
    assert decide((), 0, 1000, 1, p).desired == 4  # capped at max
    assert decide((), 0, 0, 9, p).desired == 2  # nothing in the window above the floor: down at once
    assert decide((), 0, 0, 0, p).desired == 2  # below the floor: up to min
    # inside [min, max] and no higher recommendation: a manual count is kept until the window says otherwise
    assert decide(((0.0, 3),), 1, 0, 3, p).desired == 3


def test_zero_delay_follows_the_backlog_both_ways() -> None:
    p = Policy(min_replicas=0, max_replicas=3, target_backlog_per_replica=1, scale_down_delay_seconds=0)
    assert run(p, [(0, 3), (1, 1), (2, 0), (3, 2)], start=0) == [3, 1, 0, 2]


def test_policy_from_the_api_model_and_bad_input() -> None:
    spec = Autoscaling.model_validate({"maxReplicas": 3})
    assert Policy.of(spec) == Policy(1, 3, 10, 120.0)
    with pytest.raises(ValueError, match=r"minReplicas must be <= autoscaling\.maxReplicas"):
        Autoscaling.model_validate({"minReplicas": 4, "maxReplicas": 3})
    with pytest.raises(ValueError, match="minReplicas <= maxReplicas"):
        Policy(4, 3, 1, 0)
    with pytest.raises(ValueError, match="negative"):
        recommend(-1, Policy(0, 1, 1, 0))


@given(
    st.integers(0, 5),
    st.integers(1, 10),
    st.integers(1, 20),
    st.integers(0, 30),
    st.lists(st.tuples(st.integers(1, 10), st.integers(0, 200)), max_size=40),
    st.integers(0, 50),
)
def test_desired_is_always_within_bounds_and_never_below_the_window_max(
    lo: int, span: int, target: int, delay: int, rounds: list[tuple[int, int]], start: int
) -> None:
    p = Policy(lo, lo + span, target, float(delay))
    window: Window = ()
    now, current = 0.0, start
    history: list[tuple[float, int]] = []
    for gap, backlog in rounds:
        now += gap
        d = decide(window, now, backlog, current, p)
        history.append((now, d.recommended))
        assert p.min_replicas <= d.desired <= p.max_replicas
        assert d.desired >= d.recommended  # never below what the backlog needs right now
        highest = max(r for t, r in history if t >= now - delay)
        if d.desired < min(max(current, p.min_replicas), p.max_replicas):
            assert d.desired == highest  # a scale-down goes exactly to the window's highest recommendation
        window, current = d.window, d.desired
        assert len(window) <= p.max_replicas + 1
