"""Human approval in the engine, with real `podium agent` processes and a real redis-server: a step's output waits
for a decision, the wait survives the engine going away, and reject and timeout take the documented path."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.approvals import APPROVED, REJECTED, WAITING, ApprovalRecord, ApprovalStore
from podium.dataplane.bus import Bus
from podium.engine.context import RunOptions
from podium.engine.directory import AgentDirectory
from podium.engine.progress import Progress
from podium.engine.runner import RunOutcome, run_orchestration
from tests.integration.engine.fleet import Fleet, info, start_fleet

NAME = "gated"
FAST = RunOptions(approval_poll_seconds=0.05)


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from start_fleet(redis_url, Path(tmp_path_factory.mktemp("fleet")), ["w1", "w2"])


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[aioredis.Redis]:
    fleet.reset()
    c = aioredis.Redis.from_url(fleet.redis_url)
    yield c
    await c.aclose()


def pipeline(stage_approval: dict[str, Any] | None = None, **spec: Any) -> OrchestrationSpec:
    """draft (w1, critical) then publish (w2); ``stage_approval`` is draft's approval block."""
    first: dict[str, Any] = {"name": "draft", "agent": "w1"}
    if stage_approval is not None:
        first["approval"] = stage_approval
    return OrchestrationSpec.model_validate(
        {
            "strategy": "pipeline",
            "input": {"topic": "t"},
            "pipeline": {"stages": [first, {"name": "publish", "agent": "w2"}]},
            **spec,
        }
    )


AGENTS = [info("w1", priority="critical"), info("w2")]


class Run:
    """One engine run in the background, with every progress it reported."""

    def __init__(self, fleet: Fleet, client: aioredis.Redis, bus: Bus, spec: OrchestrationSpec, uid: str) -> None:
        self.seen: list[Progress] = []
        self.task: asyncio.Task[RunOutcome] = asyncio.create_task(
            run_orchestration(
                client, AgentDirectory(AGENTS), fleet.namespace, NAME, uid, spec, self.seen.append, bus=bus,
                options=FAST,
            )
        )  # fmt: skip

    async def waiting(self, step: str) -> ApprovalRecord:
        for _ in range(600):
            for progress in reversed(self.seen):
                found = [a for a in progress.approvals if a.step == step and a.state == WAITING]
                if found:
                    return found[0]
            assert not self.task.done(), self.task.result()
            await asyncio.sleep(0.05)
        raise AssertionError(f"{step} never waited for approval")


async def gone_while_waiting(
    fleet: Fleet, client: aioredis.Redis, bus: Bus, spec: OrchestrationSpec, uid: str
) -> ApprovalRecord:
    """A run that waits for stage-draft's approval, then its engine goes away (the operator stopped): the request."""
    first = Run(fleet, client, bus, spec, uid)
    before = await first.waiting("stage-draft")
    first.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first.task
    return before


def store(fleet: Fleet, client: aioredis.Redis, uid: str) -> ApprovalStore:
    return ApprovalStore(client, fleet.namespace, NAME, uid)


async def test_a_stage_waits_for_approval_and_goes_on_once_approved(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    uid = uuid.uuid4().hex[:12]
    run = Run(fleet, client, bus, pipeline({"required": True}), uid)
    waiting = await run.waiting("stage-draft")
    assert waiting.summary is not None and '"agent": "w1"' in waiting.summary
    await asyncio.sleep(0.5)
    assert fleet.count(uid, "stage-publish") == 0, "nothing after the stage runs before the decision"
    record, made = await store(fleet, client, uid).decide("stage-draft", APPROVED, 1.0, by="alice", comment="ok")
    assert made and record.state == APPROVED
    outcome = await run.task
    assert outcome.phase == "Succeeded", outcome.message
    assert fleet.input(uid, "stage-publish")["agent"] == "w1", "the approved output went on"
    final = run.seen[-1].approvals
    assert [(a.step, a.state, a.by, a.comment) for a in final] == [("stage-draft", APPROVED, "alice", "ok")]
    events = [e.type for e in await bus.history(orchestration=f"{fleet.namespace}/{NAME}", limit=1000)]
    assert events.index("approval.requested") < events.index("approval.decided")


async def test_the_wait_survives_the_engine_going_away_and_continues_on_approve(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    uid = uuid.uuid4().hex[:12]
    spec = pipeline({"required": True, "timeoutSeconds": 3600})
    before = await gone_while_waiting(fleet, client, bus, spec, uid)
    again = Run(fleet, client, bus, spec, uid)
    after = await again.waiting("stage-draft")
    assert (after.requested_at, after.deadline) == (before.requested_at, before.deadline), "the clock did not reset"
    await store(fleet, client, uid).decide("stage-draft", APPROVED, 1.0, by="alice")
    outcome = await again.task
    assert outcome.phase == "Succeeded", outcome.message
    assert (fleet.count(uid, "stage-draft"), fleet.count(uid, "stage-publish")) == (1, 1), "nothing ran twice"


async def test_a_decision_made_while_no_engine_ran_the_run_is_in_its_history_once(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    uid = uuid.uuid4().hex[:12]
    spec = pipeline({"required": True, "timeoutSeconds": 3600})
    await gone_while_waiting(fleet, client, bus, spec, uid)  # the approval comes while no engine runs the run
    await store(fleet, client, uid).decide("stage-draft", APPROVED, 1.0, by="alice", comment="ship it")
    assert (await Run(fleet, client, bus, spec, uid).task).phase == "Succeeded"
    assert (await Run(fleet, client, bus, spec, uid).task).phase == "Succeeded"  # replayed: nothing new to say
    history = await bus.history(orchestration=f"{fleet.namespace}/{NAME}", limit=1000)
    decided = [e.payload for e in history if e.type == "approval.decided" and e.payload["step"] == "stage-draft"]
    assert decided == [{"step": "stage-draft", "state": APPROVED, "by": "alice", "comment": "ship it"}]


async def test_a_rejected_stage_fails_like_a_lost_stage_naming_who_and_why(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    uid = uuid.uuid4().hex[:12]
    run = Run(fleet, client, bus, pipeline({"required": True}), uid)
    await run.waiting("stage-draft")
    await store(fleet, client, uid).decide("stage-draft", REJECTED, 1.0, by="bob", comment="too vague")
    outcome = await run.task
    assert (outcome.phase, outcome.reason) == ("Failed", "TaskFailed")  # w1 is critical: a lost stage fails the run
    assert "stage-draft rejected by bob: too vague" in outcome.message
    assert fleet.count(uid, "stage-publish") == 0
    # Its agent did the work, but the step did not pass: status.tasks says so, and why.
    assert [(t.step, t.state, t.error) for t in outcome.tasks] == [
        ("stage-draft", "Failed", "stage-draft rejected by bob: too vague")
    ]


async def test_an_approval_nobody_gives_times_out_as_a_rejection(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    uid = uuid.uuid4().hex[:12]
    outcome = await Run(fleet, client, bus, pipeline({"required": True, "timeoutSeconds": 1}), uid).task
    assert (outcome.phase, outcome.reason) == ("Failed", "TaskFailed")
    assert "approval of stage-draft timed out" in outcome.message
    record = await store(fleet, client, uid).get("stage-draft")
    assert record is not None and (record.state, record.by) == ("TimedOut", "timeout")


async def test_a_rejected_final_result_fails_the_run_and_keeps_the_result(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    uid = uuid.uuid4().hex[:12]
    run = Run(fleet, client, bus, pipeline(None, approval={"steps": ["stage-*"], "result": True}), uid)
    for step in ("stage-draft", "stage-publish"):
        await run.waiting(step)
        await store(fleet, client, uid).decide(step, APPROVED, 1.0, by="alice")
    await run.waiting("result")
    await store(fleet, client, uid).decide("result", REJECTED, 1.0, by="carol", comment="not this week")
    outcome = await run.task
    assert (outcome.phase, outcome.reason) == ("Failed", "ApprovalRejected")
    assert outcome.message == "result rejected by carol: not this week"
    assert outcome.result["agent"] == "w2"


async def test_a_decision_given_before_the_step_is_ready_lets_it_through(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    uid = uuid.uuid4().hex[:12]
    await store(fleet, client, uid).decide("stage-draft", APPROVED, 1.0, by="annotation")
    outcome = await Run(fleet, client, bus, pipeline({"required": True}), uid).task
    assert outcome.phase == "Succeeded", outcome.message
    record = await store(fleet, client, uid).get("stage-draft")
    assert record is not None and record.requested_at is not None and record.state == APPROVED
