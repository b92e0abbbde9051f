"""RunContext against real agents: durability across restarts, retries, breakers, budgets, suspend, progress."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.api.orchestration import BalanceWeights, Limits, OrchestrationSpec, Target
from podium.dataplane.bus import Bus
from podium.engine import contracts
from podium.engine.budget import BudgetExceeded, LiveLimits
from podium.engine.context import RunContext, RunOptions, TaskFailed
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.progress import Progress
from podium.engine.resilience import OPEN, BreakerStore
from podium.engine.runner import RunOutcome, run_orchestration
from podium.engine.stats import StatsStore
from tests.integration.engine.fleet import Fleet, info, start_fleet


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from start_fleet(redis_url, Path(tmp_path_factory.mktemp("fleet")), ["w1", "w2", "w3"])


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[aioredis.Redis]:
    """Overrides the conftest client (and so the Bus built on it): the fleet is reset before each test."""
    fleet.reset()
    c = aioredis.Redis.from_url(fleet.redis_url)
    yield c
    await c.aclose()


def context(fleet: Fleet, client: aioredis.Redis, bus: Bus, agents: list[AgentInfo], **kw: Any) -> RunContext:
    return RunContext(
        redis=client,
        bus=bus,
        directory=AgentDirectory(agents),
        uid=kw.pop("uid", uuid.uuid4().hex[:12]),
        namespace=fleet.namespace,
        name="ctx",
        **kw,
    )


PIPELINE = OrchestrationSpec.model_validate(
    {
        "strategy": "pipeline",
        "input": 1,
        "pipeline": {
            "stages": [{"name": "one", "agent": "w1"}, {"name": "two", "agent": "w2"}, {"name": "three", "agent": "w3"}]
        },
    }
)


async def test_rerun_after_a_cancel_resumes_without_redoing_finished_or_in_flight_steps(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w3", sleep=1.5)
    agents = [info("w1"), info("w2"), info("w3")]
    uid = uuid.uuid4().hex[:12]
    directory = AgentDirectory(agents)
    first = asyncio.create_task(run_orchestration(client, directory, fleet.namespace, "resume", uid, PIPELINE, bus=bus))
    for _ in range(100):  # until stage three is running on its agent
        if fleet.count(uid, "stage-three"):
            break
        await asyncio.sleep(0.05)
    first.cancel()  # the operator went away mid-run
    with pytest.raises(asyncio.CancelledError):
        await first
    outcome = await run_orchestration(client, directory, fleet.namespace, "resume", uid, PIPELINE, bus=bus)
    assert outcome.phase == "Succeeded", outcome.message
    assert outcome.result["agent"] == "w3"
    # Finished steps replayed from the journal, the in-flight one re-attached: each ran exactly once.
    assert [fleet.count(uid, f"stage-{s}") for s in ("one", "two", "three")] == [1, 1, 1]
    assert [t.state for t in outcome.tasks] == ["Succeeded"] * 3
    history = await bus.history(orchestration=f"{fleet.namespace}/resume", limit=100)
    assert [e.type for e in history if e.type.startswith("run.")] == ["run.started", "run.resumed", "run.finished"]
    # The re-attached step shows as it ran: its attempt, and its dispatch before the first run went away (so it
    # keeps its place in status.tasks).
    assert [(t.step, t.attempts) for t in outcome.tasks] == [("stage-one", 1), ("stage-two", 1), ("stage-three", 1)]
    three = outcome.tasks[2]
    assert three.started_at is not None and three.started_at < three.finished_at - 1.0


async def test_finished_run_replays_instantly_from_the_journal(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    uid = uuid.uuid4().hex[:12]
    directory = AgentDirectory([info("w1"), info("w2"), info("w3")])
    first = await run_orchestration(client, directory, fleet.namespace, "again", uid, PIPELINE, bus=bus)
    again = await run_orchestration(client, directory, fleet.namespace, "again", uid, PIPELINE, bus=bus)
    assert again.result == first.result
    assert len(fleet.log(uid)) == 3


async def test_retries_with_backoff_until_success(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    fleet.set_mode("w1", fail=2)
    ctx = context(fleet, client, bus, [info("w1", retries=3)])
    await ctx.start()
    result = await ctx.run_task("s", "execute", "x", agent="w1")
    assert result.ok and result.attempt == 3
    assert result.task_id == f"{ctx.uid}:s:3"
    assert ctx.records["s"].attempts == 3 and ctx.records["s"].state == "Succeeded"
    stats = await StatsStore(client, fleet.namespace).get("w1")
    assert (stats.completed, stats.failed) == (1, 2)


async def test_a_step_ranks_on_its_run_s_outcomes_at_once_and_on_other_runs_once_its_view_is_due(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # Ranked on recent success alone (ties go by name): the record of each agent decides who gets a step.
    now = [1000.0]
    options = RunOptions(clock=lambda: now[0], recent_seconds=2.0)
    ctx = context(fleet, client, bus, [info("w1", retries=0), info("w2", retries=0)], options=options)
    await ctx.start()
    workers = Target(role="worker", weights=BalanceWeights(load=0, capability=0, success=1))
    fleet.set_mode("w1", fail_always=True)
    assert (await ctx.run_task("a", "execute", "x", target=workers)).agent == "w2"  # w1 first (no record), failed
    fleet.set_mode("w1")
    assert (await ctx.run_task("b", "execute", "x", target=workers)).agent == "w2"  # its failure counts at once
    # Another run sees w1 do well, and w2 fail: this run's view of them is not due yet, so it keeps to w2 ...
    other = StatsStore(client, fleet.namespace)
    for _ in range(5):
        await other.record("w1", True, 10.0, None)
        await other.record("w2", False, 10.0, None)
    assert (await ctx.run_task("c", "execute", "x", target=workers)).agent == "w2"
    # ... until its view is older than recent_seconds and read again.
    now[0] += 2.5
    assert (await ctx.run_task("d", "execute", "x", target=workers)).agent == "w1"


async def test_failures_are_remembered_with_task_error_and_time_and_silence_with_its_real_duration(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", fail_always=True)
    # "quiet" has no process: its task is never answered, so the engine gives up after the timeout (+5 s grace).
    quiet = dataclasses.replace(info("w1", retries=0), name="quiet")
    ctx = context(fleet, client, bus, [info("w1", retries=0), quiet])
    await ctx.start()
    for step in ("a", "b"):
        with pytest.raises(TaskFailed):
            await ctx.run_task(step, "execute", "x", agent="w1")
    stats = await StatsStore(client, fleet.namespace).get("w1")
    assert [(f.task, f.error) for f in stats.failures] == [
        (f"{ctx.uid}:b:1", "w1: RuntimeError: w1: always fails"),
        (f"{ctx.uid}:a:1", "w1: RuntimeError: w1: always fails"),
    ]
    assert stats.failures[1].time <= stats.failures[0].time
    with pytest.raises(TaskFailed, match="no result within the timeout"):
        await ctx.run_task("silent", "execute", "x", agent="quiet", timeout_seconds=1)
    silent = await StatsStore(client, fleet.namespace).get("quiet")
    # Counted with the time waited (1 s + 5 s grace), not as 0 ms.
    assert silent.failed == 1 and silent.avg_ms is not None and silent.avg_ms >= 6000
    assert silent.failures[0].error.startswith("quiet: no result within the timeout")


async def test_next_suitable_agent_after_retries_run_out(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    fleet.set_mode("w1", fail_always=True)
    agents = [info("w1", "coder", retries=1, caps={"py": 1.0}), info("w2", "coder", caps={"py": 0.5})]
    ctx = context(fleet, client, bus, agents)
    await ctx.start()
    from podium.api.orchestration import Target

    result = await ctx.run_task("s", "execute", "x", target=Target(capability="py"))
    assert result.agent == "w2"
    assert [a for a, _, _ in fleet.log(ctx.uid)] == ["w1", "w1", "w2"]


async def test_breaker_opens_in_redis_and_stops_dispatch_to_the_agent(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", fail_always=True)
    ctx = context(fleet, client, bus, [info("w1", retries=0, threshold=2)])
    await ctx.start()
    for step in ("a", "b"):
        with pytest.raises(TaskFailed):
            await ctx.run_task(step, "execute", "x", agent="w1")
    breaker = await BreakerStore(client, fleet.namespace).load("w1")
    assert breaker.state == OPEN
    with pytest.raises(TaskFailed, match="circuit breaker open"):
        await ctx.run_task("c", "execute", "x", agent="w1")
    assert fleet.count(ctx.uid, "c") == 0


async def test_answers_that_break_the_contract_are_retried_without_moving_the_breaker(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", output={"score": 70, "comment": "great"})
    ctx = context(fleet, client, bus, [info("w1", retries=1, threshold=1)])
    await ctx.start()
    with pytest.raises(TaskFailed, match=r"w1: the answer does not honour .*: field 'score' is 70, must be <= 10"):
        await ctx.run_task("a", "review", "x", agent="w1", contract=contracts.review())
    assert fleet.count(ctx.uid, "a") == 2  # retried: the contract travels with every attempt
    breaker = await BreakerStore(client, fleet.namespace).load("w1")
    assert breaker.state == "closed" and breaker.failures == 0  # a threshold of 1 would open on an error


async def test_max_cost_stops_dispatch_with_a_clear_reason(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    fleet.set_mode("w1", output={"output": "done", "cost": 0.6, "tokens": 10})
    ctx = context(fleet, client, bus, [info("w1")], limits=Limits(max_cost=1.0))
    await ctx.start()
    await ctx.run_task("a", "execute", "x", agent="w1")
    await ctx.run_task("b", "execute", "x", agent="w1")
    with pytest.raises(BudgetExceeded) as exc:
        await ctx.run_task("c", "execute", "x", agent="w1")
    assert exc.value.limit == "maxCost" and "used 1.2 of 1" in str(exc.value)
    assert fleet.count(ctx.uid, "c") == 0
    assert ctx.progress().cost == pytest.approx(1.2) and ctx.progress().tokens == 20


async def test_limits_edited_while_a_run_runs_apply_to_it_at_once(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    stages = [{"name": f"s{i}", "agent": "w1"} for i in range(8)]
    spec = OrchestrationSpec.model_validate({"strategy": "pipeline", "input": 1, "pipeline": {"stages": stages}})
    directory = AgentDirectory([info("w1")])

    async def run(edit: dict[str, Any]) -> tuple[RunOutcome, float]:
        """A run whose limits are edited half a second in; its outcome, and how long after the edit it ended."""
        limits = LiveLimits(spec.limits)
        uid = uuid.uuid4().hex[:12]
        going = asyncio.create_task(
            run_orchestration(client, directory, fleet.namespace, "live", uid, spec, bus=bus, limits=limits)
        )
        await asyncio.sleep(0.5)
        edited = asyncio.get_running_loop().time()
        assert limits.set(limits.limits.model_copy(update=edit))
        outcome = await going
        return outcome, asyncio.get_running_loop().time() - edited

    # Quick stages: with fewer tasks allowed than it has dispatched by now, it stops before its next dispatch.
    fleet.set_mode("w1", sleep=0.3)
    outcome, _ = await run({"max_tasks": 3})
    assert (outcome.phase, outcome.reason) == ("Failed", "BudgetExceeded"), outcome.message
    assert "maxTasks used 3 of 3" in outcome.message
    # A stage that takes longer than the new deadline: the run ends at the deadline, a second after its start, not
    # after the stage (nor after the hour it started with).
    fleet.set_mode("w1", sleep=4)
    outcome, waited = await run({"timeout_seconds": 1})
    assert (outcome.phase, outcome.reason) == ("Failed", "BudgetExceeded"), outcome.message
    assert "timeoutSeconds" in outcome.message and waited < 2, (outcome.message, waited)


async def test_suspended_run_dispatches_nothing_until_resumed(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    suspended = True

    async def probe() -> bool:
        return suspended

    from podium.engine.context import RunOptions

    ctx = context(fleet, client, bus, [info("w1")], is_suspended=probe, options=RunOptions(suspend_poll_seconds=0.05))
    await ctx.start()
    task = asyncio.create_task(ctx.run_task("a", "execute", "x", agent="w1"))
    await asyncio.sleep(0.5)
    assert fleet.count(ctx.uid, "a") == 0 and not task.done()
    suspended = False
    assert (await task).ok


async def test_progress_reports_each_task_and_done_over_total(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    seen: list[Progress] = []
    outcome = await run_orchestration(
        client,
        AgentDirectory([info("w1"), info("w2"), info("w3")]),
        fleet.namespace,
        "progress",
        uuid.uuid4().hex[:12],
        PIPELINE,
        seen.append,
        bus=bus,
    )
    assert outcome.phase == "Succeeded"
    assert seen[0].text == "0/3" and seen[-1].text == "3/3"
    last = seen[-1].tasks
    assert [(t.step, t.agent, t.state, t.attempts) for t in last] == [
        ("stage-one", "w1", "Succeeded", 1),
        ("stage-two", "w2", "Succeeded", 1),
        ("stage-three", "w3", "Succeeded", 1),
    ]
    assert all(t.started_at and t.finished_at and t.finished_at >= t.started_at for t in last)


async def test_a_run_whose_task_is_too_large_to_send_fails_at_once_saying_so(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    """A task over the bus limit can go to no agent, on no retry: the run ends Failed naming the size and what to do
    instead, with nothing sent and the journal saying the step failed (the operator used to retry the whole run
    every few seconds, Running for ever)."""
    spec = OrchestrationSpec.model_validate(
        {
            "strategy": "pipeline",
            "input": {"text": "x" * 1_100_000},
            "pipeline": {"stages": [{"name": "one", "agent": "w1", "fallback": "w2"}]},
        }
    )
    uid = uuid.uuid4().hex[:12]
    directory = AgentDirectory([info("w1"), info("w2")])
    outcome = await run_orchestration(client, directory, fleet.namespace, "big", uid, spec, bus=bus)
    assert outcome.phase == "Failed" and outcome.reason == "TaskFailed", outcome
    assert "over the bus limit of 1048576" in outcome.message and "by reference" in outcome.message, outcome.message
    assert fleet.log(uid) == []  # no agent got anything
    (step,) = outcome.tasks
    assert step.state == "Failed" and step.error is not None and "over the bus limit" in step.error
    # Taken up again (an operator restart), it ends the same way from its journal, sending nothing.
    again = await run_orchestration(client, directory, fleet.namespace, "big", uid, spec, bus=bus)
    assert again.phase == "Failed" and again.message == outcome.message
    assert fleet.log(uid) == []
