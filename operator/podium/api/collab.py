"""How agents work together in a run: the shared state they read and write (the blackboard), the message types
they subscribe to, and the steps a person must approve. Used by the Agent and Orchestration kinds."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from podium.api.common import Model

STATE_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,252}$"
# A message type, or a prefix ending in `*` (`review.*` matches `review.done`); `*` alone matches every type.
MESSAGE_TYPE_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9._/:-]{0,251}\*?)$"
# A step name or a glob over step names (`task-*`, `round-?-propose-*`).
STEP_PATTERN = r"^[A-Za-z0-9*?][A-Za-z0-9*?._-]{0,252}$"

StateKey = Annotated[str, Field(pattern=STATE_KEY_PATTERN, max_length=253)]
MessageType = Annotated[str, Field(pattern=MESSAGE_TYPE_PATTERN, max_length=253)]
StepPattern = Annotated[str, Field(pattern=STEP_PATTERN, max_length=253)]

MAX_WAIT_SECONDS = 7 * 86400


class AgentBlackboard(Model):
    """What the agent reads from the shared state (the blackboard) of every run it works in, and how its writes
    rank. Writes come from the agent's answers (`stateUpdates`); the engine applies them, never the agent itself."""

    read: list[StateKey] = Field(default_factory=list, max_length=64)
    """Keys of the run's shared state sent with each of this agent's tasks (task.context.blackboard.values, each
    with its version), together with the changes and rollbacks of these keys since the agent's previous task of
    that run. `*` sends every key."""
    write: list[StateKey] = Field(default_factory=list, max_length=64)
    """Keys of the shared state an `llm` agent's model is asked to write with each answer: its answer becomes
    `{output, stateUpdates}`, the writes limited to these keys (`*`: any key), applied by the engine like any
    agent's. Other backends write what their answers' stateUpdates say, with or without this list."""
    priority: int | None = Field(default=None, ge=0, le=1000)
    """Rank of this agent's writes when the run's conflictResolution is priority: the higher wins. Unset: from
    spec.priority (critical 2, important 1, optional 0)."""


class RunBlackboard(Model):
    """The run's shared state (the blackboard): values it starts with and keys every task sees."""

    read: list[StateKey] = Field(default_factory=list, max_length=64)
    """Keys sent with every task of the run, besides those the task's Agent and step ask for. `*` sends every
    key."""
    initial: dict[str, Any] | None = None
    """Values the shared state starts with, by key (JSON). Only keys that were never written are set, so an
    operator restart does not reset them."""


class StepBlackboard(Model):
    """The keys of the run's shared state this step's tasks see."""

    read: list[StateKey] = Field(default_factory=list, max_length=64)
    """Keys sent with this step's tasks, besides the run's and the Agent's. `*` sends every key."""


class Approval(Model):
    """A person must approve the step's output before the run uses it: the run waits (phase AwaitingApproval)
    until `podium run approve|reject NAME --step <step>` or the annotations podium.dev/approve and
    podium.dev/reject say so. A rejected or timed-out step fails like a step whose agents failed."""

    required: bool = True
    """False turns the approval off without removing the block."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_WAIT_SECONDS)
    """How long to wait for a decision, from the moment the step's output is ready; then the step counts as
    rejected (reason ApprovalTimedOut). Unset: until the run's limits.timeoutSeconds."""


class RunApproval(Model):
    """Steps of any strategy, and the final result, that a person must approve before the run goes on (phase
    AwaitingApproval). Decide with `podium run approve|reject NAME [--step S] [--comment C]` or the annotations
    podium.dev/approve and podium.dev/reject (comma-separated steps; `result` is the final result)."""

    steps: list[StepPattern] = Field(default_factory=list, max_length=64)
    """Steps whose output waits for approval, by name or glob over the names status.tasks shows (`plan`,
    `task-*`, `round-*-propose-*`; globs never match consensus votes or message tasks). A rejected or timed-out
    step fails like a step whose agents failed: the strategy goes on without it or the run fails, as for any lost
    step."""
    result: bool = False
    """True: the final result waits for approval before the run Succeeds; rejected or timed out, the run Fails
    (reason ApprovalRejected or ApprovalTimedOut) and keeps the result it had."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_WAIT_SECONDS)
    """How long each approval waits for a decision; then it counts as rejected. Unset: until the run's
    limits.timeoutSeconds."""


class ApprovalState(StrEnum):
    """- Waiting: the run waits for a decision.
    - Approved: a person approved it; the run went on.
    - Rejected: a person rejected it.
    - TimedOut: nobody decided within its timeoutSeconds; it counts as rejected.
    """

    waiting = "Waiting"
    approved = "Approved"
    rejected = "Rejected"
    timed_out = "TimedOut"


class ApprovalStatus(Model):
    """One approval the run asked for, and its decision."""

    step: str
    """The step whose output waits (`result`: the final result)."""
    state: ApprovalState
    requested_at: str | None = None
    """When the run started waiting (RFC 3339)."""
    deadline: str | None = None
    """When the wait times out (RFC 3339); unset: with the run's limits.timeoutSeconds."""
    decided_at: str | None = None
    """When the decision was recorded (RFC 3339)."""
    decided_by: str | None = None
    """Who decided: the name `podium run approve|reject` gives, `annotation` or `timeout`."""
    comment: str | None = Field(default=None, max_length=1024)
    """The decision's comment."""
    summary: str | None = Field(default=None, max_length=1024)
    """The start of the output waiting for approval, as JSON (`podium run history` shows all of it)."""
