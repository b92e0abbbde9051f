"""The half-open probe: one at a time, and a lost probe does not wedge the breaker (pure state machine)."""

from podium.api.agent import CircuitBreaker
from podium.engine.resilience import CLOSED, HALF_OPEN, OPEN, Breaker, parse_breaker

CFG = CircuitBreaker(failure_threshold=3, recovery_timeout_seconds=10)


def test_half_open_admits_nothing_while_its_probe_is_out() -> None:
    probing = Breaker(state=OPEN, failures=3, opened_at=100.0).before_dispatch(110.0, CFG)
    assert probing.state == HALF_OPEN and probing.probe_at == 110.0
    assert not probing.allows(115.0, CFG)
    assert probing.before_dispatch(115.0, CFG) == probing


def test_a_probe_that_never_reports_is_replaced_after_another_recovery_timeout() -> None:
    probing = Breaker(state=HALF_OPEN, failures=3, opened_at=100.0, probe_at=110.0)
    assert not probing.allows(119.9, CFG)
    again = probing.before_dispatch(120.0, CFG)
    assert again.state == HALF_OPEN and again.probe_at == 120.0 and again.failures == 3


def test_closed_dispatch_changes_nothing() -> None:
    b = Breaker(failures=2)
    assert b.allows(0.0, CFG) and b.before_dispatch(0.0, CFG) == b


def test_on_result_is_success_or_failure() -> None:
    b = Breaker(failures=2)
    assert b.on_result(True, 5.0, CFG) == Breaker(state=CLOSED)
    assert b.on_result(False, 5.0, CFG) == Breaker(state=OPEN, failures=3, opened_at=5.0)


def test_stored_breakers_without_probe_time_or_with_unknown_fields_still_parse() -> None:
    assert parse_breaker('{"state": "open", "failures": 3, "opened_at": 7.0}') == Breaker(OPEN, 3, 7.0)
    assert parse_breaker('{"state": "closed", "failures": 1, "opened_at": 0, "extra": 1}').failures == 1
