"""Steps run side by side: all of them to their end, or none left running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def gather(*steps: Awaitable[T]) -> list[T]:
    """:func:`asyncio.gather`, except that when one step raises, the others are cancelled and awaited before the
    error goes on. ``asyncio.gather`` leaves them running: a run that failed on one step would go on waiting for
    the others, then record their results (journal, events, stats) after it reported its end, and after a
    deleted run's keys were purged."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
