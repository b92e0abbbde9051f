"""What a run keeps a copy of in memory, to write it back when Redis loses it (a Redis restarted without its data):
its finished steps' journal entries, final once written, and its usage (when it started, tasks, cost, tokens).

The operator keeps one per run across the retries of its driver: a Redis that goes away makes the engine raise, and
the retry, finding an empty Redis, would otherwise run the finished steps again and start a fresh clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podium.dataplane.records import Entry
from podium.dataplane.usage import UsageRecord


@dataclass
class Kept:
    done: dict[str, Entry] = field(default_factory=dict)  # step -> its finished entry, written or replayed
    usage: UsageRecord | None = None  # the budget's counters as it knows them (podium.engine.budget)
