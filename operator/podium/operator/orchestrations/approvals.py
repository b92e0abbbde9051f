"""Approval decisions from the Orchestration's annotations, for GitOps users and for `podium run approve|reject`.

``podium.dev/approve`` and ``podium.dev/reject`` list steps (comma-separated; ``result`` is the final result);
``podium.dev/approval-comment`` and ``podium.dev/decided-by`` go with the decisions they come with. While the run
goes, the operator records every listed step's decision in the run's approvals (``podium.dataplane.approvals``):
the first decision of a step wins, so editing an annotation later changes nothing already decided, and a step
listed before it is ready is decided the moment it asks. A step in both lists is rejected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from podium.dataplane.approvals import APPROVED, REJECTED, ApprovalStore

APPROVE = "podium.dev/approve"
REJECT = "podium.dev/reject"
COMMENT = "podium.dev/approval-comment"
DECIDED_BY = "podium.dev/decided-by"
ANNOTATION = "annotation"  # who decided, when the annotations do not say


@dataclass(frozen=True)
class Decision:
    step: str
    state: str  # Approved | Rejected
    by: str
    comment: str | None


def steps_of(value: str | None) -> list[str]:
    return [s.strip() for s in (value or "").split(",") if s.strip()]


def decisions(annotations: Mapping[str, str] | None) -> list[Decision]:
    """The decisions the annotations hold, rejections first (a step in both lists is rejected)."""
    found = dict(annotations or {})
    by = found.get(DECIDED_BY) or ANNOTATION
    comment = found.get(COMMENT) or None
    rejected = steps_of(found.get(REJECT))
    out = [Decision(step, REJECTED, by, comment) for step in rejected]
    out += [Decision(step, APPROVED, by, comment) for step in steps_of(found.get(APPROVE)) if step not in rejected]
    return out


async def follow(
    store: ApprovalStore,
    annotations: Callable[[], Mapping[str, str] | None],
    clock: Callable[[], float],
    poll_seconds: float,
) -> None:
    """Record the annotations' decisions as they appear, until cancelled (the run's end)."""
    applied: set[str] = set()
    while True:
        for decision in decisions(annotations()):
            if decision.step in applied:
                continue
            await store.decide(decision.step, decision.state, clock(), by=decision.by, comment=decision.comment)
            applied.add(decision.step)
        await asyncio.sleep(poll_seconds)


def annotations_of(body: Mapping[str, Any]) -> Mapping[str, str]:
    return (body.get("metadata") or {}).get("annotations") or {}
