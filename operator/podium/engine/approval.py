"""Human approval: which steps wait for a person (pure policy) and the wait itself.

A step that needs approval runs as usual; once its output is ready the run asks for approval
(``podium.dataplane.approvals``) and waits, reporting the wait through progress (the operator shows phase
AwaitingApproval). Approved: the run goes on with the output. Rejected or timed out: the step fails
(:class:`podium.engine.context.TaskFailed`), and the strategy treats it like any lost step. The final result's
approval (``spec.approval.result``) is asked for after the strategy finished; rejected, the run fails.

The wait needs no resume code: after an operator restart the journal replays the step, the gate finds the
record still Waiting (its deadline unchanged) and waits on; a decision made meanwhile is found at once.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.approvals import APPROVED, RESULT_STEP, TIMED_OUT, ApprovalRecord, ApprovalStore

SUMMARY_CHARS = 512
MACHINERY = ("vote-", "message-")  # step prefixes of consensus votes and message tasks (engine.blackboard, .messaging)


@dataclass(frozen=True)
class Rule:
    timeout_seconds: float | None = None


class ApprovalPolicy:
    """Which steps wait for approval: exact step names (a pipeline stage's ``approval``), globs
    (``spec.approval.steps``) and the final result (``spec.approval.result``)."""

    def __init__(
        self, steps: dict[str, Rule] | None = None, patterns: list[tuple[str, Rule]] | None = None,
        result: Rule | None = None,
    ) -> None:  # fmt: skip
        self.steps = dict(steps or {})
        self.patterns = list(patterns or [])
        self.result = result

    @classmethod
    def from_spec(cls, spec: OrchestrationSpec) -> ApprovalPolicy:
        from podium.engine.strategies.pipeline import stage_step

        steps: dict[str, Rule] = {}
        if spec.pipeline is not None:
            for stage in spec.pipeline.stages:
                if stage.approval is not None and stage.approval.required:
                    steps[stage_step(stage.name)] = Rule(stage.approval.timeout_seconds)
        patterns: list[tuple[str, Rule]] = []
        result = None
        if spec.approval is not None:
            patterns = [(p, Rule(spec.approval.timeout_seconds)) for p in spec.approval.steps]
            result = Rule(spec.approval.timeout_seconds) if spec.approval.result else None
        return cls(steps, patterns, result)

    def __bool__(self) -> bool:
        return bool(self.steps or self.patterns or self.result)

    def for_step(self, step: str) -> Rule | None:
        """The step's rule, if it needs approval. Globs never match the machinery's own steps (consensus votes,
        message tasks): a pattern like ``*`` gates work, not votes about it."""
        if step in self.steps:
            return self.steps[step]
        if step.startswith(MACHINERY):
            return None
        return next((rule for pattern, rule in self.patterns if fnmatch.fnmatchcase(step, pattern)), None)


def summary(output: Any) -> str:
    """The start of an output as JSON: enough for status and an Event to say what waits."""
    text = json.dumps(output, ensure_ascii=False, default=str)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3] + "..."


def refusal(record: ApprovalRecord) -> str:
    """Why a step or result was not approved, for the step's error and the run's message."""
    if record.state == TIMED_OUT:
        return f"approval of {record.step} timed out: nobody decided in time"
    who = record.by or "someone"
    return f"{record.step} rejected by {who}" + (f": {record.comment}" if record.comment else "")


class NotApproved(Exception):
    """The final result was rejected or timed out."""

    def __init__(self, record: ApprovalRecord) -> None:
        super().__init__(refusal(record))
        self.record = record

    @property
    def reason(self) -> str:
        return "ApprovalTimedOut" if self.record.state == TIMED_OUT else "ApprovalRejected"


Report = Callable[[], Awaitable[None]]
Publish = Callable[[str, Any], Awaitable[None]]


class ApprovalGate:
    """Waits for decisions of one run; ``records`` is what progress shows (every approval asked for)."""

    def __init__(
        self,
        store: ApprovalStore,
        policy: ApprovalPolicy,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        poll_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.poll_seconds = poll_seconds
        self.records: dict[str, ApprovalRecord] = {}

    async def wait(
        self, step: str, rule: Rule, output: Any, *, report: Report, publish: Publish, cancelled: Callable[[], bool]
    ) -> ApprovalRecord:
        """Ask for approval of ``step`` (once: a restart finds the request) and wait for the decision."""
        record = await self.store.request(step, self.clock(), rule.timeout_seconds, summary(output))
        if not record.decided:
            self.records[step] = record
            await publish("approval.requested", {"step": step, "deadline": record.deadline, "summary": record.summary})
            await report()
        while not record.decided:
            if cancelled():
                break
            now = self.clock()
            if record.deadline is not None and now >= record.deadline:
                record, _ = await self.store.decide(step, TIMED_OUT, now, by="timeout")
                break
            await self.sleep(self.poll_seconds)
            record = await self.store.get(step) or record
        self.records[step] = record
        # Once per decision: this wait's, one made while no operator ran the run, or one made ahead (an annotation).
        if record.decided and not record.told:
            payload = {"step": step, "state": record.state, "by": record.by, "comment": record.comment}
            await publish("approval.decided", payload)
            await self.store.told(step)
        await report()
        return record

    @staticmethod
    def approved(record: ApprovalRecord) -> bool:
        return record.state == APPROVED


__all__ = ["RESULT_STEP", "ApprovalGate", "ApprovalPolicy", "NotApproved", "Rule", "refusal", "summary"]
