"""Who must approve what, what a task reads, and which messages start message tasks (pure parts)."""

from __future__ import annotations

from dataclasses import replace

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.approvals import ApprovalRecord
from podium.dataplane.records import Event
from podium.engine.approval import SUMMARY_CHARS, ApprovalPolicy, NotApproved, refusal, summary
from podium.engine.blackboard import Blackboard
from podium.engine.directory import AgentInfo, write_priority
from podium.engine.messaging import freed, listeners, triggers

SPEC = OrchestrationSpec.model_validate(
    {
        "strategy": "pipeline",
        "blackboard": {"read": ["goal"]},
        "approval": {"steps": ["round-*-propose-*", "plan"], "result": True, "timeoutSeconds": 60},
        "pipeline": {
            "stages": [
                {"name": "draft", "agent": "a", "approval": {"timeoutSeconds": 5}, "blackboard": {"read": ["style"]}},
                {"name": "check", "agent": "a", "approval": {"required": False}},
            ]
        },
    }
)


def test_approval_policy_from_stages_globs_and_the_result() -> None:
    policy = ApprovalPolicy.from_spec(SPEC)
    assert policy.for_step("stage-draft") is not None and policy.for_step("stage-draft").timeout_seconds == 5
    assert policy.for_step("stage-check") is None  # required: false turns it off
    assert policy.for_step("round-2-propose-w1") is not None and policy.for_step("plan") is not None
    assert policy.for_step("round-2-review-w1-by-w2") is None
    everything = ApprovalPolicy(patterns=[("*", policy.result)])  # type: ignore[list-item]
    assert everything.for_step("task-a") is not None
    assert everything.for_step("vote-task-a-0-w1") is None and everything.for_step("message-w1-1-0") is None
    assert policy.result is not None and policy.result.timeout_seconds == 60
    assert not ApprovalPolicy.from_spec(OrchestrationSpec.model_validate({"strategy": "swarm"}))


def test_what_waits_is_summarised_and_a_refusal_names_who_and_why() -> None:
    assert summary({"a": 1}) == '{"a": 1}'
    long = summary({"text": "x" * 2000})
    assert len(long) == SUMMARY_CHARS and long.endswith("...")
    rejected = ApprovalRecord("stage-draft", "Rejected", by="bob", comment="too vague")
    assert refusal(rejected) == "stage-draft rejected by bob: too vague"
    timed_out = ApprovalRecord("result", "TimedOut", by="timeout")
    assert refusal(timed_out) == "approval of result timed out: nobody decided in time"
    assert NotApproved(timed_out).reason == "ApprovalTimedOut" and NotApproved(rejected).reason == "ApprovalRejected"


def test_a_task_reads_the_runs_the_steps_and_its_agents_keys_once() -> None:
    board = Blackboard.from_spec(state=None, spec=SPEC)  # type: ignore[arg-type]  # reads() needs no state
    writer = AgentInfo("a", "writer", reads=("style", "draft"))
    assert board.reads(writer, "stage-draft") == ["goal", "style", "draft"]
    assert board.reads(writer, "stage-check") == ["goal", "style", "draft"]
    assert board.reads(replace(writer, reads=("*",)), "stage-check") == ["*"]


def test_write_priority_comes_from_the_blackboard_block_else_the_agents_priority() -> None:
    from podium.api.agent import AgentSpec

    base = {"role": "r", "backend": {"command": {"args": ["cat"]}}}
    assert write_priority(AgentSpec.model_validate({**base, "priority": "critical"})) == 2
    assert write_priority(AgentSpec.model_validate({**base, "priority": "optional"})) == 0
    assert write_priority(AgentSpec.model_validate({**base, "blackboard": {"priority": 7}})) == 7


def test_message_tasks_start_for_listening_subscribers_other_than_the_sender() -> None:
    agents = [
        AgentInfo("w1", "r", subscriptions=("finding",), message_tasks=True),
        AgentInfo("w2", "r", subscriptions=("finding",)),  # subscribed, but waits for its next task
        AgentInfo("w3", "r", subscriptions=("task.*",), message_tasks=True),
    ]
    finding = Event("1-0", "finding", "w1", {}, 0.0)
    assert [a.name for a in listeners(agents, finding)] == []  # its own message
    assert [a.name for a in listeners(agents, replace(finding, sender="user:x"))] == ["w1"]
    about_message_task = Event("2-0", "task.finished", "engine", {"step": "message-w3-1-0"}, 0.0)
    assert not triggers(about_message_task)  # else each message task would start the next, for ever
    assert triggers(replace(about_message_task, payload={"step": "stage-draft"}))


def test_a_listeners_step_end_offers_it_the_messages_that_came_meanwhile() -> None:
    agents = [
        AgentInfo("w1", "r", subscriptions=("finding",), message_tasks=True),
        AgentInfo("w2", "r", subscriptions=("finding",)),  # no message tasks: its next task brings them
    ]
    ended = Event("3-0", "task.finished", "engine", {"step": "stage-draft", "agent": "w1"}, 0.0)
    assert [a.name for a in freed(agents, ended)] == ["w1"]
    # The step ended on w2 after w1's attempt failed over: w1 is idle too.
    assert [a.name for a in freed(agents, replace(ended, payload={"step": "stage-draft", "agent": "w2"}))] == ["w1"]
    assert freed(agents, replace(ended, sender="w1")) == [], "an agent's own message of that type frees nobody"
    assert freed(agents, replace(ended, type="task.withdrawn")) == []
