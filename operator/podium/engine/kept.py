"""What a run keeps a copy of in memory, to write it back when Redis loses it (a Redis restarted without its data):
its finished steps' journal entries, final once written, and when it started.

The operator keeps one per run across the retries of its driver: a Redis that goes away makes the engine raise, and
the retry, finding an empty Redis, would otherwise run the finished steps again and start a fresh clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podium.dataplane.records import Entry


@dataclass
class Kept:
    done: dict[str, Entry] = field(default_factory=dict)  # step -> its finished entry, written or replayed
    started: float | None = None  # the run's start, as its budget claimed it
