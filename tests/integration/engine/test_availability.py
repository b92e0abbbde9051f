"""Agent availability decided per agent, up front and while the run goes, against real `podium agent` processes.

The directory is the engine's whole view of the agents, so each test states what the operator would have seen
(replicas, ready replicas, autoscaling, maintenance); a ``refresh`` function stands for the operator reading the
Agents again while the run goes. A name with no process behind it (``ghost``) is an agent whose replicas never
come up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.bus import Bus
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.messages import Result
from podium.engine.context import RunOptions
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.kept import Kept
from podium.engine.progress import Progress
from podium.engine.runner import RunOutcome, run_orchestration
from podium.engine.stats import StatsStore
from tests.integration.engine.fleet import Fleet, info, start_fleet


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from start_fleet(redis_url, Path(tmp_path_factory.mktemp("fleet")), ["w1", "w2", "w3"])


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[aioredis.Redis]:
    fleet.reset()
    c = aioredis.Redis.from_url(fleet.redis_url)
    yield c
    await c.aclose()


def at_zero(agent: AgentInfo, **facts: Any) -> AgentInfo:
    return dataclasses.replace(agent, replicas=0, ready_replicas=0, **facts)


def withdrawn(events: list[Any], uid: str) -> list[Any]:
    """The ``task.withdrawn`` events of one run (the module's runs share a name)."""
    return [e.payload for e in events if e.type == "task.withdrawn" and e.payload["task"].startswith(f"{uid}:")]


def pipeline(*stages: dict[str, Any], wait: int = 180, **spec: Any) -> OrchestrationSpec:
    return OrchestrationSpec.model_validate(
        {"strategy": "pipeline", "input": "x", "agentWaitSeconds": wait, "pipeline": {"stages": list(stages)}, **spec}
    )


async def run(
    fleet: Fleet, client: aioredis.Redis, bus: Bus, spec: OrchestrationSpec, agents: list[AgentInfo], **kw: Any
) -> tuple[RunOutcome, str, list[Progress]]:
    seen: list[Progress] = []
    uid = uuid.uuid4().hex[:12]
    directory = AgentDirectory(agents)
    outcome = await run_orchestration(
        client, directory, fleet.namespace, "avail", uid, spec, seen.append, bus=bus, **kw
    )
    return outcome, uid, seen


async def test_a_critical_agent_that_is_unavailable_fails_the_run_before_any_work(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    spec = pipeline({"name": "draft", "agent": "w1"}, {"name": "gate", "agent": "w2"})
    agents = [info("w1"), at_zero(info("w2", priority="critical"))]
    started = time.monotonic()
    outcome, uid, _ = await run(fleet, client, bus, spec, agents)
    assert (outcome.phase, outcome.reason) == ("Failed", "AgentUnavailable")
    assert outcome.message == (
        "stage 'gate' needs critical agent 'w2', which is unavailable: scaled to zero replicas, without "
        "spec.autoscaling to wake it"
    )
    assert fleet.log(uid) == []  # decided up front: the draft was not done (and paid for) in vain
    assert time.monotonic() - started < 5


async def test_an_unavailable_critical_agent_met_while_running_fails_the_step_at_once(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # The gate was up when the run started and is in maintenance by the time its stage comes.
    now = {"w1": info("w1"), "w2": info("w2", priority="critical")}

    async def refresh() -> AgentDirectory:
        return AgentDirectory(now.values())

    spec = pipeline({"name": "draft", "agent": "w1"}, {"name": "gate", "agent": "w2"})
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        if any(t.step == "stage-draft" and t.state == "Succeeded" for t in p.tasks):
            now["w2"] = dataclasses.replace(now["w2"], maintenance=True)

    uid = uuid.uuid4().hex[:12]
    fresh = RunOptions(refresh_seconds=0)  # every dispatch reads the agents again (the operator: every 2 s)
    outcome = await run_orchestration(
        client,
        AgentDirectory(now.values()),
        fleet.namespace,
        "avail",
        uid,
        spec,
        progress,
        bus=bus,
        agents=refresh,
        options=fresh,
    )
    assert (outcome.phase, outcome.reason) == ("Failed", "AgentUnavailable")
    assert outcome.message == "stage 'gate' failed: w2: unavailable: in maintenance (spec.maintenance)"
    assert [s for _, _, s in fleet.log(uid)] == ["stage-draft"]
    events = await bus.history(orchestration=f"{fleet.namespace}/avail", limit=100)
    assert [e.payload["step"] for e in events if e.type == "task.no_agents_available"] == ["stage-gate"]


async def test_an_optional_agent_that_is_unavailable_is_skipped_and_the_run_degraded(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    spec = OrchestrationSpec.model_validate(
        {
            "strategy": "eventDriven",
            "input": "x",
            "eventDriven": {"tasks": [{"name": "main", "agents": ["w1"]}, {"name": "extra", "agents": ["w2"]}]},
        }
    )
    agents = [info("w1"), at_zero(info("w2", priority="optional"))]
    outcome, uid, seen = await run(fleet, client, bus, spec, agents)
    assert outcome.phase == "Succeeded" and outcome.degraded
    assert set(outcome.result) == {"main"}
    assert "extra" in outcome.notes[-1] and seen[-1].text == "2/2"
    assert [s for _, _, s in fleet.log(uid)] == ["task-main"]


async def test_a_stage_goes_to_the_next_suitable_agent_when_its_own_is_unavailable(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    spec = pipeline({"name": "check", "agent": "w1", "fallback": "w2"})
    outcome, uid, _ = await run(fleet, client, bus, spec, [at_zero(info("w1")), info("w2")])
    assert outcome.phase == "Succeeded" and outcome.degraded
    assert outcome.notes == [
        "agent 'w1' unavailable (scaled to zero replicas, without spec.autoscaling to wake it); stage-check went "
        "to 'w2'"
    ]
    assert fleet.log(uid) == [("w2", "execute", "stage-check")]


async def test_an_autoscaled_agent_at_zero_gets_the_work_and_the_run_waits_for_it_saying_so(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # w1's process is up, so the queued task is done as soon as it is consumed: the wake-up the autoscaler does.
    fleet.set_mode("w1", sleep=2.5)
    spec = pipeline({"name": "work", "agent": "w1"})
    outcome, uid, seen = await run(fleet, client, bus, spec, [at_zero(info("w1"), autoscaled=True)])
    assert outcome.phase == "Succeeded" and not outcome.degraded, outcome.message
    waits = [w for p in seen for w in p.waiting]
    assert waits and waits[0].startswith("agent 'w1' is not ready (at zero replicas; its autoscaler starts one")
    assert waits[0].endswith("waiting up to 180s (agentWaitSeconds)")
    assert seen[-1].waiting == [] and fleet.log(uid) == [("w1", "execute", "stage-work")]


async def test_an_agent_that_never_comes_up_is_waited_for_a_bounded_time_then_passed_over(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    ghost = at_zero(dataclasses.replace(info("w2"), name="ghost"), autoscaled=True)
    spec = pipeline({"name": "check", "agent": "ghost", "fallback": "w1"}, wait=2)
    started = time.monotonic()
    outcome, uid, seen = await run(fleet, client, bus, spec, [ghost, info("w1")])
    assert outcome.phase == "Succeeded" and outcome.degraded, outcome.message
    assert "agent 'ghost' unavailable (not ready within 2s (agentWaitSeconds)" in outcome.notes[0]
    assert any(p.waiting for p in seen) and seen[-1].waiting == []
    assert fleet.log(uid) == [("w1", "execute", "stage-check")]
    assert time.monotonic() - started < 15  # the bound, not a task timeout (5 s) per retry
    # Passing an agent over is not its failure: neither its stats nor its breaker moved.
    assert (await StatsStore(client, fleet.namespace).get("ghost")).tasks == 0
    # The task it never took is withdrawn as the run passes it over: ghost would otherwise wake (its queue is what
    # the autoscaler reads) and do work nobody waits for.
    assert withdrawn(await bus.history(orchestration=f"{fleet.namespace}/avail", limit=100), uid) == [
        {"step": "stage-check", "task": f"{uid}:stage-check:1", "agent": "ghost", "queued": True}
    ]
    assert outcome.withdrawn == {"ghost": 1}
    assert await bus.queue_depth(fleet.namespace, "ghost") == 0


async def run_as_agents_change(
    fleet: Fleet,
    client: aioredis.Redis,
    bus: Bus,
    spec: OrchestrationSpec,
    first: list[AgentInfo],
    later: list[AgentInfo],
) -> tuple[RunOutcome, str, float]:
    """A run whose view of the agents is ``first`` at its first look (the dispatch's) and ``later`` from then on,
    looked at again every 0.2 s while it waits: (outcome, uid, seconds it took)."""
    looks = 0

    async def refresh() -> AgentDirectory:
        nonlocal looks
        looks += 1
        return AgentDirectory(first if looks == 1 else later)

    uid = uuid.uuid4().hex[:12]
    started = time.monotonic()
    fresh = RunOptions(refresh_seconds=0, wake_poll_seconds=0.2)
    outcome = await run_orchestration(
        client, AgentDirectory(first), fleet.namespace, "avail", uid, spec, bus=bus, agents=refresh, options=fresh
    )
    return outcome, uid, time.monotonic() - started


async def test_an_agent_that_becomes_unavailable_while_waited_for_is_passed_over_saying_why(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # 'ghost' lost its last ready replica moments ago (recovering: worth a wait); by the next look its recovery
    # grace is over and it counts as unavailable. The run passes it over then, long before agentWaitSeconds, and
    # says that: not that it waited the whole bound.
    ghost = dataclasses.replace(info("w2"), name="ghost", ready_replicas=0, recovering=True)
    spec = pipeline({"name": "check", "agent": "ghost", "fallback": "w1"}, wait=180)
    outcome, uid, seconds = await run_as_agents_change(
        fleet, client, bus, spec, [ghost, info("w1")], [dataclasses.replace(ghost, recovering=False), info("w1")]
    )
    assert outcome.phase == "Succeeded" and outcome.degraded, outcome.message
    assert outcome.notes[0] == (
        "agent 'ghost' unavailable (none of its 1 replicas is ready; waited 0s for it); stage-check went to 'w1'"
    )
    assert seconds < 15
    assert fleet.log(uid) == [("w1", "execute", "stage-check")]


OUTAGE = "its backend is unavailable: replica ghost-0: its model server: cannot reach http://llm:8080/v1"


def goes_down(ready: AgentInfo) -> Callable[[], Awaitable[AgentDirectory]]:
    """The agents' view for a run: ``ready`` at the first look, then its model server down moments ago (the
    operator's BackendUnavailable within the restart grace: waking)."""
    down = dataclasses.replace(ready, ready_replicas=0, outage=OUTAGE)
    looks = 0

    async def refresh() -> AgentDirectory:
        nonlocal looks
        looks += 1
        return AgentDirectory([ready if looks == 1 else down])

    return refresh


async def test_a_run_waits_for_an_agent_whose_model_server_is_restarting_saying_so(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # 'ghost' was ready when its task went out; then its model server stopped answering (the operator shows
    # BackendUnavailable, moments ago: most likely a restart). Its replica takes nothing meanwhile, so the task
    # waits in its queue: the run says so (Progress.waiting, the Waiting condition) instead of only Running, and
    # goes on when the server is back and the replica takes the task.
    ready = dataclasses.replace(info("w2"), name="ghost")
    seen: list[Progress] = []
    said = asyncio.Event()

    def told(progress: Progress) -> None:
        seen.append(progress)
        if progress.waiting:
            said.set()

    uid = uuid.uuid4().hex[:12]
    fresh = RunOptions(refresh_seconds=0, wake_poll_seconds=0.2)
    spec = pipeline({"name": "check", "agent": "ghost"})
    running = asyncio.create_task(
        run_orchestration(
            client,
            AgentDirectory([ready]),
            fleet.namespace,
            "avail",
            uid,
            spec,
            told,
            bus=bus,
            agents=goes_down(ready),
            options=fresh,
        )
    )
    await asyncio.wait_for(said.wait(), 10)
    assert next(p.waiting for p in seen if p.waiting) == [
        f"agent 'ghost' is not ready ({OUTAGE}): its task waits in its queue"
    ]
    replica = bus.consumer(fleet.namespace, "ghost", "ghost-0")  # the server is back: its replica takes the task
    [delivery] = await replica.fetch(1, 2000)
    await replica.complete(
        delivery, Result(delivery.task.id, delivery.task.attempt, True, output="ok", agent="ghost", replica="ghost-0")
    )
    outcome = await asyncio.wait_for(running, 30)
    assert outcome.phase == "Succeeded" and not outcome.degraded, outcome.message
    assert seen[-1].waiting == []


async def test_an_attempt_that_waited_out_its_timeout_in_the_queue_of_an_agent_coming_back_says_why(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # As above, but the model server does not come back within the attempt's timeout: the attempt never started,
    # so the run's error names the agent's state ("... while its task waited in its queue"), not a timeout of the
    # agent's own.
    ready = dataclasses.replace(info("w2"), name="ghost")
    ready = dataclasses.replace(ready, resilience=ready.resilience.model_copy(update={"timeout_seconds": 1}))
    fresh = RunOptions(refresh_seconds=0, wake_poll_seconds=0.2)
    spec = pipeline({"name": "check", "agent": "ghost", "retries": 0})
    outcome = await asyncio.wait_for(
        run_orchestration(
            client,
            AgentDirectory([ready]),
            fleet.namespace,
            "avail",
            uuid.uuid4().hex[:12],
            spec,
            bus=bus,
            agents=goes_down(ready),
            options=fresh,
        ),
        30,
    )
    assert outcome.phase == "Failed", outcome.message
    assert f"ghost: {OUTAGE}, while its task waited in its queue (task " in outcome.message, outcome.message
    assert "no result within the timeout" not in outcome.message


async def test_a_run_stops_waiting_for_an_agent_deleted_while_its_task_runs(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # w1 takes the task and is deleted while it works on it (the operator then removes its queue and keys: nothing
    # will answer). The run does not wait out the attempt's timeout nor retry it there: it goes to the fallback.
    fleet.set_mode("w1", sleep=20)
    spec = pipeline({"name": "check", "agent": "w1", "fallback": "w2"})
    outcome, uid, seconds = await run_as_agents_change(fleet, client, bus, spec, [info("w1"), info("w2")], [info("w2")])
    assert outcome.phase == "Succeeded" and outcome.degraded, outcome.message
    assert outcome.notes[0] == (
        "agent 'w1' unavailable (no longer in the orchestration's scope (deleted?), while its task ran); "
        "stage-check went to 'w2'"
    )
    assert seconds < 15  # not w1's 20 s, nor its timeout
    assert [a for a, _, _ in fleet.log(uid)] == ["w1", "w2"]  # w1 started it once and got no second attempt


async def test_a_task_still_queued_for_an_agent_put_in_maintenance_goes_to_the_next_agent(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # 'ghost' (nothing reads its inbox) was ready when its task went out and is put in maintenance while the task
    # waits in its queue: its replicas take nothing new, so the run takes the task back at its next look and goes
    # to the fallback, instead of waiting out the attempt's 60 s timeout.
    ghost = dataclasses.replace(info("w2"), name="ghost")
    ghost = dataclasses.replace(ghost, resilience=ghost.resilience.model_copy(update={"timeout_seconds": 60}))
    spec = pipeline({"name": "check", "agent": "ghost", "fallback": "w1"})
    later = [dataclasses.replace(ghost, maintenance=True), info("w1")]
    outcome, uid, seconds = await run_as_agents_change(fleet, client, bus, spec, [ghost, info("w1")], later)
    assert outcome.phase == "Succeeded" and outcome.degraded, outcome.message
    assert outcome.notes[0] == (
        "agent 'ghost' unavailable (in maintenance (spec.maintenance), while its task waited in its queue); "
        "stage-check went to 'w1'"
    )
    assert seconds < 15
    assert fleet.log(uid) == [("w1", "execute", "stage-check")]
    assert withdrawn(await bus.history(orchestration=f"{fleet.namespace}/avail", limit=100), uid) == [
        {"step": "stage-check", "task": f"{uid}:stage-check:1", "agent": "ghost", "queued": True}
    ]
    assert await bus.queue_depth(fleet.namespace, "ghost") == 0
    assert (await StatsStore(client, fleet.namespace).get("ghost")).tasks == 0  # passed over is not failed


async def test_an_attempt_the_run_stops_waiting_for_is_taken_back_from_its_agents_queue(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # 'silent' looks ready but no process reads its inbox (hung, or its pods wedged): its attempt times out and is
    # withdrawn then, not when the run ends, so when silent comes back it does not first work through attempts
    # nobody waits for, ahead of the ones that matter.
    silent = info("silent", retries=0)
    silent = dataclasses.replace(silent, resilience=silent.resilience.model_copy(update={"timeout_seconds": 1}))
    spec = pipeline({"name": "check", "agent": "silent", "fallback": "w1"}, {"name": "next", "agent": "w1"})
    outcome, uid, _ = await run(fleet, client, bus, spec, [silent, info("w1")])
    assert outcome.phase == "Succeeded", outcome.message
    taken = withdrawn(await bus.history(orchestration=f"{fleet.namespace}/avail", limit=100), uid)
    assert taken and taken == [  # each attempt (the stage retries) as it timed out
        {"step": "stage-check", "task": f"{uid}:stage-check:{n}", "agent": "silent", "queued": True}
        for n in range(1, len(taken) + 1)
    ]
    assert await bus.queue_depth(fleet.namespace, "silent") == 0 and outcome.withdrawn == {"silent": len(taken)}
    assert fleet.log(uid) == [("w1", "execute", "stage-check"), ("w1", "execute", "stage-next")]


async def test_a_run_is_never_held_by_an_agent_it_does_not_need(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    spec = pipeline({"name": "work", "agent": "w1"})
    unrelated = [at_zero(info("w2", priority="critical")), dataclasses.replace(info("w3"), maintenance=True)]
    outcome, _, seen = await run(fleet, client, bus, spec, [info("w1"), *unrelated])
    assert outcome.phase == "Succeeded" and not outcome.degraded
    assert seen[-1].text == "1/1"


def ghost_run(
    fleet: Fleet,
    client: aioredis.Redis,
    bus: Bus,
    uid: str,
    *before: dict[str, Any],
    kept: Kept | None = None,
    timeout: int = 60,
) -> asyncio.Task[RunOutcome]:
    """A run whose last step goes to 'ghost' (no process reads its inbox; ``timeout``, no retries), after
    ``before`` (stages of w1), looking at its agents every 0.2 s; ``kept`` as the operator's driver passes it."""
    ghost = dataclasses.replace(info("w2", retries=0), name="ghost")
    ghost = dataclasses.replace(ghost, resilience=ghost.resilience.model_copy(update={"timeout_seconds": timeout}))
    agents = AgentDirectory([info("w1"), ghost])

    async def refresh() -> AgentDirectory:
        return agents

    spec = pipeline(*before, {"name": "check", "agent": "ghost"})
    fast = RunOptions(refresh_seconds=0, wake_poll_seconds=0.2)
    return asyncio.create_task(
        run_orchestration(
            client, agents, fleet.namespace, "lost", uid, spec, bus=bus, agents=refresh, options=fast, kept=kept
        )
    )


async def waiting_on_ghost(
    fleet: Fleet,
    client: aioredis.Redis,
    bus: Bus,
    *before: dict[str, Any],
    kept: Kept | None = None,
    agent_timeout: int = 60,
) -> tuple[asyncio.Task[RunOutcome], str]:
    """:func:`ghost_run`, once ghost's task is in its inbox: (the run, its uid)."""
    uid = uuid.uuid4().hex[:12]
    running = ghost_run(fleet, client, bus, uid, *before, kept=kept, timeout=agent_timeout)
    await in_ghosts_inbox(fleet, bus, running)
    return running, uid


async def in_ghosts_inbox(fleet: Fleet, bus: Bus, running: asyncio.Task[RunOutcome]) -> None:
    started = time.monotonic()
    while await bus.queue_depth(fleet.namespace, "ghost") == 0:
        assert time.monotonic() - started < 10 and not running.done(), "the task never reached ghost's inbox"
        await asyncio.sleep(0.05)


async def answer_as_ghost(fleet: Fleet, bus: Bus, running: asyncio.Task[RunOutcome], within: float) -> list[str]:
    """Answer ghost's tasks (as a replica that came up would) until the run ends or ``within`` seconds pass: the
    ids it was given."""
    consumer = bus.consumer(fleet.namespace, "ghost", "ghost-0")
    done: list[str] = []
    started = time.monotonic()
    while not running.done() and time.monotonic() - started < within:
        for d in await consumer.fetch(4, 200):
            done.append(d.task.id)
            answer = Result(d.task.id, d.task.attempt, True, output="ok", agent="ghost", replica="0", finished_at=0)
            await consumer.complete_many([(d, answer)])
    return done


def resent(events: list[Any], uid: str) -> list[Any]:
    return [e.payload for e in events if e.type == "task.resent" and e.payload["task"].startswith(f"{uid}:")]


async def test_an_attempt_redis_lost_is_sent_again_at_the_next_look(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # Redis loses the run's journal and ghost's inbox while the task waits there (a Redis pod that restarted empty:
    # the chart's emptyDir). The run notices at its next look (the journal entry that went ahead of the task is
    # gone, and no result came) and sends the same attempt again; the agent that comes up then does it. Before,
    # the run waited out the attempt's 60 s timeout, then retried.
    started = time.monotonic()
    running, uid = await waiting_on_ghost(fleet, client, bus)
    journal = OrchestrationKeys(fleet.namespace, "lost").journal(uid)
    assert await client.delete(journal, AgentKeys(fleet.namespace, "ghost").inbox) == 2

    done = await answer_as_ghost(fleet, bus, running, 20)
    outcome = await asyncio.wait_for(running, 5)
    assert outcome.phase == "Succeeded", outcome.message
    assert done == [f"{uid}:stage-check:1"]  # the same attempt, not a retry (the stage has none)
    assert time.monotonic() - started < 15  # not the attempt's 60 s timeout
    events = await bus.history(orchestration=f"{fleet.namespace}/lost", limit=50)
    assert resent(events, uid) == [
        {
            "step": "stage-check",
            "task": f"{uid}:stage-check:1",
            "agent": "ghost",
            "why": "lost from Redis: its journal entry was gone and no result came",
        }
    ]
    assert (await StatsStore(client, fleet.namespace).get("ghost")).failed == 0  # nothing counted against it


async def test_an_attempt_sent_again_is_given_its_whole_timeout_from_then(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # Redis loses the attempt late in its timeout (4 s, and the 5 s the engine adds for the result to come back);
    # the agent never had it, so the resent attempt's time counts from when it went out again. Before, the run
    # still waited from the first send and failed the step with "timed out" while the agent was doing it.
    started = time.monotonic()
    running, uid = await waiting_on_ghost(fleet, client, bus, agent_timeout=4)
    await asyncio.sleep(6 - (time.monotonic() - started))
    journal = OrchestrationKeys(fleet.namespace, "lost").journal(uid)
    assert await client.delete(journal, AgentKeys(fleet.namespace, "ghost").inbox) == 2
    await in_ghosts_inbox(fleet, bus, running)
    resent_at = time.monotonic()
    await asyncio.sleep(5)  # past the first send's 9 s, well within the resent attempt's

    done = await answer_as_ghost(fleet, bus, running, 10)
    outcome = await asyncio.wait_for(running, 5)
    assert outcome.phase == "Succeeded", outcome.message
    assert done == [f"{uid}:stage-check:1"]
    assert time.monotonic() - resent_at < 9


async def test_finished_steps_redis_lost_are_written_back_so_a_resume_does_not_run_them_again(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # Redis restarts empty while the run's second stage waits: the first stage's journal entry and the run's start
    # went with it. The run writes them back at its next look, so when the operator then restarts too, the resumed
    # run replays the first stage instead of running it again, and keeps its clock. Before, only the lost attempt
    # was sent again, and a resume ran every finished step a second time.
    keys = OrchestrationKeys(fleet.namespace, "lost")
    running, uid = await waiting_on_ghost(fleet, client, bus, {"name": "draft", "agent": "w1"})
    started = await client.hget(keys.budget, "started")
    assert started is not None
    assert await client.delete(keys.journal(uid), keys.budget, AgentKeys(fleet.namespace, "ghost").inbox) == 3

    deadline = time.monotonic() + 10
    while await client.hget(keys.journal(uid), "stage-draft") is None:
        assert time.monotonic() < deadline and not running.done(), "the finished stage's entry was not written back"
        await asyncio.sleep(0.1)
    assert await client.hget(keys.budget, "started") == started
    restored = [e.payload for e in await bus.history(orchestration=f"{fleet.namespace}/lost", limit=50)]
    assert {"steps": ["stage-draft"], "why": "lost from Redis: the journal was gone"} in restored
    running.cancel()  # the operator goes too
    await asyncio.gather(running, return_exceptions=True)

    resumed = ghost_run(fleet, client, bus, uid, {"name": "draft", "agent": "w1"})
    done = await answer_as_ghost(fleet, bus, resumed, 20)
    outcome = await asyncio.wait_for(resumed, 5)
    assert outcome.phase == "Succeeded", outcome.message
    assert fleet.count(uid, "stage-draft") == 1  # replayed from the journal, not run again
    assert done == [f"{uid}:stage-check:1"]  # the lost attempt, sent again once (by the first run)


async def test_a_run_taken_up_again_after_redis_came_back_empty_writes_back_what_it_kept(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # Redis goes away and comes back without its data: the engine raises on the lost connection and the operator's
    # driver runs it again, with the same Kept. The new run writes back the first stage's entry and the run's usage
    # before it looks at the journal, so it replays that stage instead of running it again, keeps its clock, and
    # counts the tasks it dispatched before against its limits still.
    keys = OrchestrationKeys(fleet.namespace, "lost")
    kept = Kept()
    running, uid = await waiting_on_ghost(fleet, client, bus, {"name": "draft", "agent": "w1"}, kept=kept)
    started = await client.hget(keys.budget, "started")
    assert await client.hget(keys.budget, "tasks") == b"2"  # draft and check
    running.cancel()  # what the lost connection does to the engine
    await asyncio.gather(running, return_exceptions=True)
    assert await client.delete(keys.journal(uid), keys.budget, AgentKeys(fleet.namespace, "ghost").inbox) == 3

    again = ghost_run(fleet, client, bus, uid, {"name": "draft", "agent": "w1"}, kept=kept)
    done = await answer_as_ghost(fleet, bus, again, 20)
    outcome = await asyncio.wait_for(again, 5)
    assert outcome.phase == "Succeeded", outcome.message
    assert fleet.count(uid, "stage-draft") == 1  # replayed, not run again
    assert done == [f"{uid}:stage-check:1"]  # its entry went with Redis: dispatched again, as attempt 1
    assert await client.hget(keys.budget, "started") == started
    assert await client.hget(keys.budget, "tasks") == b"3"  # the two counted before the loss, and check again
    restored = [e.payload for e in await bus.history(orchestration=f"{fleet.namespace}/lost", limit=50)]
    assert {"steps": ["stage-draft"], "why": "lost from Redis: the journal was gone"} in restored


async def test_a_purged_run_does_not_send_its_attempt_again(fleet: Fleet, client: aioredis.Redis, bus: Bus) -> None:
    # Deleting an Orchestration cancels its queued tasks on its agents, marks it cancelled there, and purges its
    # keys (the journal too), maybe on another operator replica while the run still waits: a journal gone is then
    # no lost attempt, and nothing goes out again.
    running, uid = await waiting_on_ghost(fleet, client, bus)
    try:
        assert await bus.cancel(f"{fleet.namespace}/lost", ["ghost"], uid) == {"ghost": 1}
        assert await client.delete(OrchestrationKeys(fleet.namespace, "lost").journal(uid)) == 1
        await asyncio.sleep(1.5)  # several looks
        assert not running.done()
        assert await bus.queue_depth(fleet.namespace, "ghost") == 0
        assert not resent(await bus.history(orchestration=f"{fleet.namespace}/lost", limit=50), uid)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_run_whose_team_is_gone_when_it_is_taken_up_fails_saying_so(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # The Team was deleted while no operator ran the run: the one taking it up finds no scope. It ends, naming the
    # team, rather than raising (the operator would retry it every few seconds for ever).
    spec = pipeline({"name": "s", "role": "worker"}, team="crew")
    outcome, _, _ = await asyncio.wait_for(run(fleet, client, bus, spec, [info("w1")]), 10)
    assert (outcome.phase, outcome.reason) == ("Failed", "TeamNotFound"), outcome
    assert outcome.message == "team 'crew' does not exist: the run has no agents to go on with"
    assert outcome.tasks == []  # nothing dispatched
