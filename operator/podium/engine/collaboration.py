"""What the run context does around every task so that agents work together: tell each task what its agent
should know (``prepare``), and once a step succeeded, wait for its approval and apply what its answer asks
(``accept``). The parts are the blackboard (``engine.blackboard``), messages (``engine.messaging``) and approval
(``engine.approval``); this module only orders them.

Effects (state writes, messages) of a result are applied after its approval, and at least once: a marker per
task id (``OrchestrationKeys.effects``) skips them when a restarted run replays the step; a crash between the
effects and the marker applies them again (a write from the same base is then a conflict the policy settles,
a consensus proposal keeps its id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.approvals import RESULT_STEP, ApprovalRecord, ApprovalStore
from podium.dataplane.collab import (
    CONTEXT_CHANGES,
    CONTEXT_MESSAGES,
    InvalidEffects,
    parse_messages,
    parse_state_updates,
)
from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.mailbox import Mailbox, Told, message_wire
from podium.dataplane.messages import Result, Task, TaskKind
from podium.dataplane.state import SharedState
from podium.engine.approval import ApprovalGate, ApprovalPolicy, NotApproved, refusal
from podium.engine.blackboard import Blackboard
from podium.engine.messaging import Router

if TYPE_CHECKING:
    from podium.engine.context import RunContext


@dataclass
class _Told:
    """What one step's earlier attempts on an agent were told: a retry is told it again, with what is new."""

    messages: list[Any] = field(default_factory=list)
    changes: list[Any] = field(default_factory=list)


class Collaboration:
    def __init__(
        self, redis: aioredis.Redis, namespace: str, name: str, uid: str, spec: OrchestrationSpec, state: SharedState
    ) -> None:
        self.redis = redis
        self.spec = spec
        self.board = Blackboard.from_spec(state, spec)
        self.mailbox = Mailbox(redis, namespace, name, uid)
        self.policy = ApprovalPolicy.from_spec(spec)
        self.store = ApprovalStore(redis, namespace, name, uid)
        self.gate: ApprovalGate | None = None
        self._effects = OrchestrationKeys(namespace, name).effects(uid)
        self._told: dict[tuple[str, str], _Told] = {}

    async def start(self, ctx: RunContext) -> None:
        self.gate = ApprovalGate(
            self.store, self.policy, clock=ctx.options.clock, sleep=ctx.options.sleep,
            poll_seconds=ctx.options.approval_poll_seconds,
        )  # fmt: skip
        await self.board.initialise(self.spec.blackboard.initial if self.spec.blackboard else None)

    def router(self, ctx: RunContext) -> Router:
        return Router(ctx, self.mailbox)

    def approvals(self) -> list[ApprovalRecord]:
        return list(self.gate.records.values()) if self.gate else []

    # ------------------------------------------------------------------ before dispatch
    async def prepare(self, ctx: RunContext, step: str, task: Task) -> None:
        """Put in ``task.context`` what its agent should know; a ``message`` task gets its messages as input."""
        if task.agent not in ctx.directory:
            return
        info = ctx.directory.get(task.agent)
        keys = self.board.reads(info, step)
        if not keys and not info.subscriptions:
            return
        told = await self.mailbox.take(task.agent, info.subscriptions, keys)
        await self.mailbox.record_delivery(task.agent, told.messages)
        context = self._with_earlier(step, task.agent, told)
        if str(task.kind) == TaskKind.MESSAGE:
            task.input = {"messages": context.pop("messages", []), "messagesDropped": context.pop("messagesDropped", 0)}
        task.context = context or None

    def _with_earlier(self, step: str, agent: str, told: Told) -> dict[str, Any]:
        """The context, with what an earlier attempt of the same step on the same agent was told first."""
        earlier = self._told.setdefault((step, agent), _Told())
        earlier.messages += [message_wire(m) for m in told.messages]
        earlier.changes += told.changes
        context = told.to_context() or {}
        if earlier.messages:
            context["messages"] = earlier.messages[-CONTEXT_MESSAGES:]
            context["messagesDropped"] = told.messages_dropped + max(0, len(earlier.messages) - CONTEXT_MESSAGES)
        if earlier.changes and "blackboard" in context:
            context["blackboard"]["changes"] = earlier.changes[-CONTEXT_CHANGES:]
            dropped = told.changes_dropped + max(0, len(earlier.changes) - CONTEXT_CHANGES)
            context["blackboard"]["changesDropped"] = dropped
        return context

    # ------------------------------------------------------------------ after success
    async def accept(self, ctx: RunContext, step: str, result: Result) -> None:
        """Wait for the step's approval if it needs one (raises TaskFailed when refused), then apply its effects."""
        rule = self.policy.for_step(step)
        if rule is not None and self.gate is not None:
            record = await self.gate.wait(
                step, rule, result.output, report=ctx.report, publish=ctx.publish, cancelled=ctx.is_cancelled
            )
            ctx.raise_if_cancelled()
            if not self.gate.approved(record):
                from podium.engine.context import TaskFailed

                raise TaskFailed(step, [refusal(record)], ctx.priorities([result.agent]))
        self._told.pop((step, result.agent), None)
        await self.apply_effects(ctx, step, result)

    async def apply_effects(self, ctx: RunContext, step: str, result: Result) -> None:
        if not result.state_updates and not result.messages:
            return
        if await self.redis.hexists(self._effects, result.task_id):
            return  # a replayed step: applied by the run before the restart
        try:
            updates = parse_state_updates(result.state_updates)
            messages = parse_messages(result.messages)
        except InvalidEffects as exc:  # the runtime checks them; an agent that bypassed it gets this
            await ctx.publish("effects.refused", {"step": step, "agent": result.agent, "error": str(exc)})
            updates, messages = [], []
        for index, update in enumerate(updates):
            await self.board.write(ctx, step, result, index, update)
        for message in messages:
            await ctx.publish_as(result.agent, message.type, message.payload)
        await self.redis.hset(self._effects, result.task_id, "1")

    async def approve_result(self, ctx: RunContext, result: Any) -> None:
        """Wait for the final result's approval if the spec asks for it; raises NotApproved when refused."""
        if self.policy.result is None or self.gate is None:
            return
        record = await self.gate.wait(
            RESULT_STEP, self.policy.result, result, report=ctx.report, publish=ctx.publish,
            cancelled=ctx.is_cancelled,
        )  # fmt: skip
        ctx.raise_if_cancelled()
        if not self.gate.approved(record):
            raise NotApproved(record)
