"""The built-in backlog autoscaler's decision (pure): how many replicas an Agent should run for its inbox backlog.

It follows the HorizontalPodAutoscaler's shape: a recommendation per round, scale up at once, scale down only to
the highest recommendation seen within the last ``scaleDownDelaySeconds`` (the HPA's downscale stabilization), so
a backlog that drains for a moment between bursts does not make replicas flap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from podium.api.agent import Autoscaling


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target_backlog_per_replica: int
    scale_down_delay_seconds: float

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise ValueError(f"need 0 <= minReplicas <= maxReplicas and maxReplicas >= 1, got {self}")
        if self.target_backlog_per_replica < 1:
            raise ValueError("targetBacklogPerReplica must be >= 1")
        if self.scale_down_delay_seconds < 0:
            raise ValueError("scaleDownDelaySeconds must be >= 0")

    @classmethod
    def of(cls, spec: Autoscaling) -> Policy:
        return cls(
            spec.min_replicas, spec.max_replicas, spec.target_backlog_per_replica, float(spec.scale_down_delay_seconds)
        )


# (time in seconds, recommended replicas), oldest first: the recommendations inside the scale-down window.
Window = tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class Decision:
    recommended: int  # this round's raw recommendation for the backlog
    desired: int  # what spec.replicas should be now
    window: Window  # to pass to the next round


def recommend(backlog: int, policy: Policy) -> int:
    """ceil(backlog / target) within [min, max]; any backlog gets at least one replica, even with min 0."""
    if backlog < 0:
        raise ValueError(f"backlog cannot be negative: {backlog}")
    want = math.ceil(backlog / policy.target_backlog_per_replica)
    if backlog > 0:
        want = max(want, 1)
    return max(policy.min_replicas, min(policy.max_replicas, want))


def decide(window: Window, now: float, backlog: int, current: int, policy: Policy, *, stuck: bool = False) -> Decision:
    """The replicas to run now, given the current spec.replicas and the recommendations of earlier rounds.

    ``current`` may be anything a user set by hand; the answer is always within [min, max]. ``stuck``: the replicas
    running cannot take work (they cannot start, keep exiting, or their backend does not answer), so the backlog
    waits for them, not for more of them: no scale-up, which would only add replicas stuck the same way.
    """
    recommended = recommend(backlog, policy)
    horizon = now - policy.scale_down_delay_seconds
    kept = (*((t, r) for t, r in window if horizon <= t <= now), (now, recommended))
    highest = max(r for _, r in kept)
    if recommended > current:
        desired = current if stuck and current > 0 else recommended
    elif highest < current:
        desired = highest
    else:
        desired = current
    desired = max(policy.min_replicas, min(policy.max_replicas, desired))
    return Decision(recommended, desired, _compact(kept))


def _compact(window: Window) -> Window:
    """Drop entries that can never be the window's maximum again: an older one no higher than a newer one.

    The window then holds a strictly decreasing run of values, at most max_replicas + 1 entries long.
    """
    out: list[tuple[float, int]] = []
    for t, r in window:
        while out and out[-1][1] <= r:
            out.pop()
        out.append((t, r))
    return tuple(out)
