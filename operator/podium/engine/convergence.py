"""When iterative strategies (swarm, peerToPeer) stop: pure functions over the score history."""

from __future__ import annotations

from collections.abc import Sequence


def stalled_generations(best: Sequence[float], threshold: float) -> int:
    """How many of the latest generations improved the best score by less than ``threshold``.

    ``best`` is the best score seen in each generation, oldest first.
    """
    stalled = 0
    record = float("-inf")
    for score in best:
        if score - record < threshold and record != float("-inf"):
            stalled += 1
        else:
            stalled = 0
        record = max(record, score)
    return stalled


def swarm_converged(best: Sequence[float], threshold: float, patience: int) -> bool:
    return stalled_generations(best, threshold) >= patience


def reached(score: float | None, target: float | None) -> bool:
    return target is not None and score is not None and score >= target


def round_converged(previous: float | None, current: float | None, threshold: float) -> bool:
    """peerToPeer: a round converged when nothing was applied or the solution's score moved less than threshold."""
    if current is None:
        return True
    if previous is None:
        return False
    return abs(current - previous) < threshold
