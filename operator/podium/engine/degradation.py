"""What losing an agent means for the run, by the agents' priority tiers. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from podium.api.common import Priority


class Verdict(StrEnum):
    DEGRADE = "degrade"  # carry on without this piece; the result is marked degraded
    FAIL = "fail"  # the run cannot succeed without it


def assess(priorities: Iterable[str]) -> Verdict:
    """A step that no agent could do: fail when it was work for a critical agent, else degrade.

    ``priorities`` are the tiers of the agents that were meant to do the step. Critical work has no substitute;
    important and optional work is lost with a note in the result, which the operator surfaces as Degraded.
    """
    tiers = set(priorities)
    return Verdict.FAIL if Priority.critical.value in tiers else Verdict.DEGRADE


def partial_verdict(succeeded: int, failed: int) -> Verdict | None:
    """A step sent to several agents: None when all succeeded, degrade when some did, fail only when none did."""
    if not failed:
        return None
    return Verdict.FAIL if succeeded == 0 else Verdict.DEGRADE
