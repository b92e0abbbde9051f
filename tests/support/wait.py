"""The one way tests wait: poll a check until it holds, bounded, and say what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout: float = 60.0,
    every: float = 0.5,
    *,
    ignore: tuple[type[BaseException], ...] = (),
    abort: Callable[[], str | None] | None = None,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` every ``every`` seconds until it returns something truthy, and return that.

    ``ignore``: exceptions that mean "not yet" (an object not created yet). ``abort``: a reason to stop waiting at
    once (the process under test died). ``detail``: more text for the failure (a log tail). After ``timeout``
    seconds, an AssertionError names ``what`` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except ignore as e:
            last = e
        else:
            if last:
                return last
        why = abort() if abort is not None else None
        if why is None and time.monotonic() >= deadline:
            why = f"timed out after {timeout}s"
        if why is not None:
            more = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"{why} waiting for {what}; last: {last!r}{more}")
        time.sleep(every)
