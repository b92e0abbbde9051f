"""Agents working together through the engine, with real `podium agent` processes and a real redis-server: the
blackboard (reads in task contexts, writes through answers, each conflict policy, audit, rollback seen by a
subscriber) and messages by type (routed only to subscribers, message tasks for idle ones, per-agent history)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.bus import Bus
from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.records import decode_entry
from podium.dataplane.state import SharedState
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.runner import RunOutcome, run_orchestration
from tests.integration.engine.fleet import Fleet, info, start_fleet

NAME = "board"


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from start_fleet(redis_url, Path(tmp_path_factory.mktemp("fleet")), ["w1", "w2", "w3", "w4"])


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[aioredis.Redis]:
    fleet.reset()
    c = aioredis.Redis.from_url(fleet.redis_url)
    yield c
    await c.aclose()


def agent(name: str, **collab: Any) -> AgentInfo:
    return replace(info(name), **collab)


def context_of(fleet: Fleet, uid: str, step: str) -> dict[str, Any] | None:
    raw = fleet.sync().get(f"t:{fleet.namespace}:context:{uid}:{step}")
    return None if raw is None else json.loads(raw)


async def run(
    fleet: Fleet, client: aioredis.Redis, bus: Bus, spec: dict[str, Any], agents: list[AgentInfo], uid: str = ""
) -> tuple[RunOutcome, str]:
    uid = uid or uuid.uuid4().hex[:12]
    parsed = OrchestrationSpec.model_validate(spec)
    directory = AgentDirectory(agents)
    return await run_orchestration(client, directory, fleet.namespace, NAME, uid, parsed, bus=bus), uid


def two_writers(policy: str, initial: Any) -> dict[str, Any]:
    """w1 and w2 both read `doc` at its initial version and write it at once; w3 reads the outcome after both."""
    return {
        "strategy": "eventDriven",
        "conflictResolution": policy,
        "blackboard": {"initial": {"doc": initial}},
        "eventDriven": {
            "tasks": [
                {"name": "first", "agents": ["w1"]},
                {"name": "second", "agents": ["w2"]},
                {"name": "after", "agents": ["w3"], "dependsOn": ["first", "second"]},
            ]
        },
    }


WRITERS = [agent("w1", reads=("doc",)), agent("w2", reads=("doc",)), agent("w3", reads=("doc",))]


async def settled(fleet: Fleet, client: aioredis.Redis, uid: str) -> tuple[Any, list[Any]]:
    state = SharedState(client, fleet.namespace, NAME)
    told = context_of(fleet, uid, "task-after")
    assert told is not None
    value, _ = await state.get("doc")
    assert told["blackboard"]["values"]["doc"]["value"] == value, "the next task is told the settled value"
    return value, await state.audit()


# ------------------------------------------------------------------------------------------- reads and writes
async def test_an_agent_reads_its_keys_and_its_answer_writes_them(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", write={"plan": {"steps": ["draft", "review"]}})
    spec = {
        "strategy": "pipeline",
        "blackboard": {"initial": {"plan": {"steps": []}, "other": 1}},
        "pipeline": {"stages": [{"name": "plan", "agent": "w1"}, {"name": "use", "agent": "w2"}]},
    }
    outcome, uid = await run(fleet, client, bus, spec, [agent("w1", reads=("plan",)), agent("w2", reads=("plan",))])
    assert outcome.phase == "Succeeded", outcome.message
    first = context_of(fleet, uid, "stage-plan")
    assert first == {"blackboard": {"values": {"plan": {"value": {"steps": []}, "version": 1}}}}
    second = context_of(fleet, uid, "stage-use")
    assert second is not None
    assert second["blackboard"]["values"] == {"plan": {"value": {"steps": ["draft", "review"]}, "version": 2}}
    state = SharedState(client, fleet.namespace, NAME)
    (change,) = [c for c in await state.history("plan") if c.writer == "w1"]
    assert (change.kind, change.old, change.version) == ("set", {"steps": []}, 2)
    assert await state.audit() == []  # no conflict: nothing to resolve
    assert (await state.get("other"))[0] == 1  # keys nobody read stay out of every context


async def test_timestamp_the_later_of_two_concurrent_writes_wins(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", write={"doc": {"by": "w1"}})
    fleet.set_mode("w2", write={"doc": {"by": "w2"}}, wait_write=["doc", "w1"])
    outcome, uid = await run(fleet, client, bus, two_writers("timestamp", {"by": "nobody"}), WRITERS)
    assert outcome.phase == "Succeeded", outcome.message
    value, audit = await settled(fleet, client, uid)
    assert value == {"by": "w2"}
    (resolution,) = audit
    assert resolution.strategy == "timestamp" and resolution.reason.startswith("latest write wins: w2")
    assert [c.writer for c in resolution.candidates] == ["w1", "w2"]


async def test_priority_the_higher_ranked_writer_wins_even_when_it_wrote_first(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", write={"doc": {"by": "w1"}})
    fleet.set_mode("w2", write={"doc": {"by": "w2"}}, wait_write=["doc", "w1"])
    ranked = [replace(WRITERS[0], write_priority=5), replace(WRITERS[1], write_priority=1), WRITERS[2]]
    outcome, uid = await run(fleet, client, bus, two_writers("priority", {"by": "nobody"}), ranked)
    assert outcome.phase == "Succeeded", outcome.message
    value, audit = await settled(fleet, client, uid)
    assert value == {"by": "w1"}, "the later write of the lower-ranked agent lost"
    (resolution,) = audit
    assert resolution.strategy == "priority" and resolution.reason == (
        f"highest priority wins: w1 at {resolution.candidates[0].at:.6f} priority 5"
    )


async def test_merge_keeps_both_sides_and_names_the_field_both_changed(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", write={"doc": {"title": "t", "intro": "by w1", "status": "draft"}})
    fleet.set_mode("w2", write={"doc": {"title": "t", "summary": "by w2", "status": "final"}}, wait_write=["doc", "w1"])
    outcome, uid = await run(fleet, client, bus, two_writers("merge", {"title": "t"}), WRITERS)
    assert outcome.phase == "Succeeded", outcome.message
    value, audit = await settled(fleet, client, uid)
    assert value == {"title": "t", "intro": "by w1", "summary": "by w2", "status": "final"}
    (resolution,) = audit
    assert resolution.strategy == "merge" and resolution.conflicts == ["status"]


async def test_consensus_asks_the_run_agents_to_vote_and_a_majority_takes_the_stale_write(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", write={"doc": {"by": "w1"}}, vote=0)
    fleet.set_mode("w2", write={"doc": {"by": "w2"}}, wait_write=["doc", "w1"], vote=1)
    fleet.set_mode("w3", vote=1)
    outcome, uid = await run(fleet, client, bus, two_writers("consensus", {"by": "nobody"}), WRITERS)
    assert outcome.phase == "Succeeded", outcome.message
    votes = sorted((a, s) for a, kind, s in fleet.log(uid) if kind == "vote")
    assert votes == [(w, f"vote-task-second-0-{w}") for w in ("w1", "w2", "w3")]
    question = fleet.input(uid, "vote-task-second-0-w3")
    assert question == {"key": "doc", "current": {"by": "w1"}, "proposals": [{"value": {"by": "w2"}, "writer": "w2"}]}
    value, audit = await settled(fleet, client, uid)
    assert value == {"by": "w2"}
    (resolution,) = audit
    assert resolution.strategy == "consensus" and resolution.reason.startswith("accepted by 2 of 3 voters")
    assert {t.step: t.state for t in outcome.tasks}["vote-task-second-0-w1"] == "Succeeded"


async def test_consensus_without_a_majority_keeps_the_current_value(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", write={"doc": {"by": "w1"}}, vote=0)
    fleet.set_mode("w2", write={"doc": {"by": "w2"}}, wait_write=["doc", "w1"], vote=1)
    fleet.set_mode("w3", vote=0)
    outcome, uid = await run(fleet, client, bus, two_writers("consensus", {"by": "nobody"}), WRITERS)
    assert outcome.phase == "Succeeded", outcome.message
    value, audit = await settled(fleet, client, uid)
    assert value == {"by": "w1"}
    assert "no strict majority" in audit[-1].reason


# ------------------------------------------------------------------------------------------- rollback
async def test_a_rollback_reaches_the_subscriber_with_its_next_task(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    state = SharedState(client, fleet.namespace, NAME)
    await state.set("doc", {"v": 0}, writer="test")
    snapshot = await state.snapshot()
    fleet.set_mode("w1", write={"doc": {"v": 1}})
    fleet.set_mode("w2", sleep=2.0)
    spec = {
        "strategy": "pipeline",
        "pipeline": {
            "stages": [
                {"name": "write", "agent": "w1"},
                {"name": "pause", "agent": "w2"},
                {"name": "read", "agent": "w1"},
            ]
        },
    }
    uid = uuid.uuid4().hex[:12]
    running = asyncio.create_task(run(fleet, client, bus, spec, [agent("w1", reads=("doc",)), agent("w2")], uid))
    journal = OrchestrationKeys(fleet.namespace, NAME).journal(uid)
    for _ in range(400):  # until the pause stage runs: the subscriber's write is in, its next task not yet out
        raw = await client.hget(journal, "stage-pause")
        if raw is not None and decode_entry(raw).state == "dispatched":
            break
        await asyncio.sleep(0.05)
    assert (await state.get("doc"))[0] == {"v": 1}
    await state.rollback(snapshot, writer="user:test")
    outcome, _ = await running
    assert outcome.phase == "Succeeded", outcome.message
    told = context_of(fleet, uid, "stage-read")
    assert told is not None
    board = told["blackboard"]
    assert board["values"]["doc"] == {"value": {"v": 0}, "version": 3}
    kinds = [(c["kind"], c["writer"], c["old"], c["new"]) for c in board["changes"]]
    assert kinds == [("set", "w1", {"v": 0}, {"v": 1}), ("rollback", "user:test", {"v": 1}, {"v": 0})]


# ------------------------------------------------------------------------------------------- messages
async def test_messages_reach_only_the_agents_subscribed_to_their_type(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    fleet.set_mode("w1", publish=[{"type": "finding", "payload": {"bug": 1}}, {"type": "noise", "payload": 0}])
    fleet.set_mode("w2", wait_for=["w4", "message"])  # the idle subscriber got its message task first
    spec = {
        "strategy": "eventDriven",
        "eventDriven": {
            "tasks": [
                {"name": "find", "agents": ["w1"]},
                {"name": "react", "agents": ["w2", "w3"], "dependsOn": ["find"]},
            ]
        },
    }
    agents = [
        agent("w1", subscriptions=("finding",)),  # its own messages never come back to it
        agent("w2", subscriptions=("finding", "review.*")),
        agent("w3", subscriptions=("other",)),
        agent("w4", subscriptions=("find*",), message_tasks=True),  # used by no step: idle
    ]
    uid = uuid.uuid4().hex[:12]
    await bus.publish(f"{fleet.namespace}/{NAME}", "review.asked", {"by": "a person"}, "user:test")
    outcome, _ = await run(fleet, client, bus, spec, agents, uid)
    assert outcome.phase == "Succeeded", outcome.message
    told = context_of(fleet, uid, "task-react-w2")
    assert told is not None
    assert [(m["type"], m["sender"], m["payload"]) for m in told["messages"]] == [
        ("review.asked", "user:test", {"by": "a person"}),
        ("finding", "w1", {"bug": 1}),
    ]
    assert context_of(fleet, uid, "task-react-w3") is None, "w3 subscribed to neither type"
    assert context_of(fleet, uid, "task-find") is None, "w1 subscribed to findings, and its own do not come back"
    (message_step,) = [s for a, kind, s in fleet.log(uid) if kind == "message"]
    assert message_step.startswith("message-w4-")
    delivered = fleet.input(uid, message_step)
    assert [(m["type"], m["sender"]) for m in delivered["messages"]] == [("finding", "w1")]
    assert {t.step: t.state for t in outcome.tasks}[message_step] == "Succeeded"
    # Each agent's history holds what it was delivered, marked with the run; the run's history holds everything.
    w2 = await bus.history(agent=(fleet.namespace, "w2"))
    assert [(e.type, e.run) for e in w2 if e.type != "result"] == [
        ("review.asked", f"{fleet.namespace}/{NAME}"),
        ("finding", f"{fleet.namespace}/{NAME}"),
    ]
    w3 = await bus.history(agent=(fleet.namespace, "w3"))
    assert [e.type for e in w3 if e.type != "result"] == []
    run_history = [(e.type, e.sender) for e in await bus.history(orchestration=f"{fleet.namespace}/{NAME}")]
    assert ("finding", "w1") in run_history and ("noise", "w1") in run_history


async def test_a_message_that_came_while_its_listener_worked_reaches_it_when_its_step_ends(
    fleet: Fleet, client: aioredis.Redis, bus: Bus
) -> None:
    # w4 has a step of its own and nothing after it: the finding arrives while it works on that step, so only a
    # message task after it can deliver the finding within the run.
    fleet.set_mode("w1", write={"found": {"bug": 1}}, publish=[{"type": "finding", "payload": {"bug": 1}}])
    fleet.set_mode("w4", wait_write=["found", "w1"], sleep=0.5)
    spec = {
        "strategy": "eventDriven",
        "eventDriven": {"tasks": [{"name": "find", "agents": ["w1"]}, {"name": "work", "agents": ["w4"]}]},
    }
    agents = [agent("w1"), agent("w4", subscriptions=("finding",), message_tasks=True)]
    outcome, uid = await run(fleet, client, bus, spec, agents)
    assert outcome.phase == "Succeeded", outcome.message
    assert [kind for a, kind, _ in fleet.log(uid) if a == "w4"] == ["execute", "message"]
    (message_step,) = [s for a, kind, s in fleet.log(uid) if kind == "message"]
    assert [(m["type"], m["sender"]) for m in fleet.input(uid, message_step)["messages"]] == [("finding", "w1")]
    assert {t.step: t.state for t in outcome.tasks}[message_step] == "Succeeded"
