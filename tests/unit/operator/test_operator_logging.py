"""The operator's log keeps what says something: a timer's routine success is dropped, its failure is not."""

from __future__ import annotations

import logging

from podium.operator.cli import quiet_timers


def record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, msg, None, None)


def test_routine_timer_successes_are_dropped_and_everything_else_is_kept() -> None:
    assert not quiet_timers(record(logging.INFO, "Timer 'health' succeeded."))
    assert quiet_timers(record(logging.ERROR, "Timer 'health' failed with an exception. Will retry."))
    assert quiet_timers(record(logging.INFO, "Handler 'reconcile' succeeded."))
    assert quiet_timers(record(logging.INFO, "Creation is processed: 1 succeeded; 0 failed."))
