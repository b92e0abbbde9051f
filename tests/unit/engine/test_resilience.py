import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from podium.api.agent import Backoff, CircuitBreaker, Retry
from podium.engine.resilience import CLOSED, HALF_OPEN, OPEN, Breaker, backoff_delay


def test_backoff_without_jitter_doubles_then_caps() -> None:
    b = Backoff(initial_seconds=1, factor=2, max_seconds=5, jitter=False)
    assert [backoff_delay(n, b) for n in range(1, 6)] == [1, 2, 4, 5, 5]


@given(retry=st.integers(1, 40), seed=st.integers(0, 1000))
def test_jittered_backoff_stays_between_half_and_full_planned_delay(retry: int, seed: int) -> None:
    b = Backoff(initial_seconds=0.5, factor=3, max_seconds=20, jitter=True)
    cap = min(20.0, 0.5 * 3 ** (retry - 1))
    delay = backoff_delay(retry, b, random.Random(seed))
    assert cap / 2 <= delay <= cap


def test_jitter_spreads_retries_apart() -> None:
    b = Backoff(initial_seconds=4, jitter=True)
    rng = random.Random(1)
    assert len({round(backoff_delay(1, b, rng), 6) for _ in range(20)}) > 10


def test_linear_policy_grows_by_the_initial_wait_then_caps() -> None:
    b = Backoff(initial_seconds=1.5, factor=3, max_seconds=5, jitter=False)  # factor is exponential's only
    assert [backoff_delay(n, b, policy="linear") for n in range(1, 6)] == [1.5, 3.0, 4.5, 5, 5]
    assert [backoff_delay(n, b, policy="exponential") for n in range(1, 4)] == [1.5, 4.5, 5]


@given(retry=st.integers(1, 40), seed=st.integers(0, 1000))
def test_jittered_linear_backoff_stays_between_half_and_full_planned_delay(retry: int, seed: int) -> None:
    b = Backoff(initial_seconds=0.5, max_seconds=8, jitter=True)
    cap = min(8.0, 0.5 * retry)
    assert cap / 2 <= backoff_delay(retry, b, random.Random(seed), policy="linear") <= cap


def test_the_retry_policy_is_exponential_unless_the_agent_says_linear() -> None:
    assert Retry().policy == "exponential"
    assert Retry.model_validate({"policy": "linear"}).policy == "linear"
    with pytest.raises(ValidationError):
        Retry.model_validate({"policy": "fibonacci"})
    with pytest.raises(ValueError, match="unknown retry policy"):
        backoff_delay(1, Backoff(), policy="fibonacci")


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        backoff_delay(0, Backoff())


CFG = CircuitBreaker(failure_threshold=3, recovery_timeout_seconds=10)


def test_breaker_opens_after_threshold_failures_in_a_row() -> None:
    b = Breaker()
    for t in range(2):
        b = b.on_failure(float(t), CFG)
        assert b.state == CLOSED and b.allows(float(t), CFG)
    b = b.on_failure(2.0, CFG)
    assert b.state == OPEN
    assert not b.allows(11.9, CFG)


def test_success_resets_failure_count() -> None:
    b = Breaker().on_failure(0, CFG).on_failure(1, CFG).on_success().on_failure(2, CFG)
    assert b.state == CLOSED and b.failures == 1


def test_open_breaker_lets_one_probe_through_after_recovery_timeout() -> None:
    b = Breaker(state=OPEN, failures=3, opened_at=100.0)
    assert not b.allows(109.0, CFG)
    probe = b.before_dispatch(110.0, CFG)
    assert probe.state == HALF_OPEN
    assert probe.on_success().state == CLOSED


def test_failed_probe_reopens_for_a_full_timeout() -> None:
    b = Breaker(state=HALF_OPEN, failures=3, opened_at=100.0).on_failure(200.0, CFG)
    assert b.state == OPEN and b.opened_at == 200.0
    assert not b.allows(205.0, CFG) and b.allows(210.0, CFG)
