"""The blackboard: the run's shared state as its agents see and change it.

Agents read: every task carries the values (with versions) of the keys its Agent (``spec.blackboard.read``), its
step (a stage's ``blackboard.read``) and the run (``spec.blackboard.read``) ask for, and the changes of those keys
since the agent's previous task (``podium.dataplane.mailbox``). Agents write through their answers
(``stateUpdates``): the engine applies each write with the version the agent read as its base, so a write made
from a value someone changed since is a conflict, settled by the run's ``conflictResolution`` and audited
(``podium.dataplane.state``). Under ``consensus`` the stale write becomes a proposal and the run's ready agents
vote on it with ``vote`` tasks (contract ``podium.engine.contracts.vote``); a strict majority decides. Agents
never touch run keys themselves (their Redis users cannot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.collab import StateUpdate
from podium.dataplane.conflicts import Resolution
from podium.dataplane.messages import Result, TaskKind
from podium.dataplane.state import SharedState, VersionConflict
from podium.engine import contracts, parallel
from podium.engine.directory import AgentInfo

if TYPE_CHECKING:
    from podium.engine.context import RunContext

INITIAL_WRITER = "spec"  # who wrote spec.blackboard.initial, in the state's history


class Blackboard:
    def __init__(
        self, state: SharedState, run_reads: Sequence[str] = (), step_reads: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.state = state
        self.run_reads = tuple(run_reads)
        self.step_reads = {step: tuple(keys) for step, keys in (step_reads or {}).items()}
        # One vote at a time per key: proposals opened meanwhile are put to the same vote, or the next one.
        self._voting: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_spec(cls, state: SharedState, spec: OrchestrationSpec) -> Blackboard:
        from podium.engine.strategies.pipeline import stage_step

        steps: dict[str, Sequence[str]] = {}
        if spec.pipeline is not None:
            steps = {stage_step(s.name): s.blackboard.read for s in spec.pipeline.stages if s.blackboard is not None}
        return cls(state, spec.blackboard.read if spec.blackboard else (), steps)

    def reads(self, agent: AgentInfo, step: str) -> list[str]:
        """The keys a task of ``step`` sent to ``agent`` carries, in order, each once (``*``: every key)."""
        keys = [*self.run_reads, *self.step_reads.get(step, ()), *agent.reads]
        return ["*"] if "*" in keys else list(dict.fromkeys(keys))

    async def initialise(self, initial: Mapping[str, Any] | None) -> None:
        """Set ``spec.blackboard.initial`` keys that were never written (a restarted run keeps what it has)."""
        for key, value in (initial or {}).items():
            try:
                await self.state.set(key, value, writer=INITIAL_WRITER, expected_version=0)
            except VersionConflict:
                continue

    async def write(self, ctx: RunContext, step: str, result: Result, index: int, update: StateUpdate) -> None:
        """Apply one write of an answer, resolving a conflict by the run's policy; announce what happened."""
        agent = result.agent
        info = ctx.directory.get(agent) if agent in ctx.directory else None
        outcome = await self.state.update(
            update.key,
            update.value,
            writer=agent,
            priority=info.write_priority if info else 0,
            base_version=update.base_version,
            at=result.finished_at,
            proposal_id=f"{result.task_id}#{index}",
        )
        if isinstance(outcome, int):
            await ctx.publish("state.updated", {"key": update.key, "version": outcome, "writer": agent, "step": step})
            return
        if self.state.resolution == "consensus":
            outcome = await self.consensus(ctx, step, index, update.key)
        await ctx.publish("state.resolved", resolution_event(outcome, step))

    async def consensus(self, ctx: RunContext, step: str, index: int, key: str) -> Resolution:
        """Ask the run's ready agents to vote on the open proposals of ``key``, then settle by strict majority."""
        async with self._voting.setdefault(key, asyncio.Lock()):
            return await self._vote(ctx, step, index, key)

    async def _vote(self, ctx: RunContext, step: str, index: int, key: str) -> Resolution:
        proposals = await self.state.proposals(key)
        current, _ = await self.state.get(key)
        if not proposals:  # settled by the vote that ran while this write waited for its turn
            earlier = [r for r in await self.state.audit(limit=50) if r.key == key]
            return (
                earlier[-1] if earlier else Resolution(key, "consensus", current, [], "settled by an earlier vote", 0.0)
            )
        electorate = [a.name for a in ctx.directory.all() if a.ready] or [a.name for a in ctx.directory.all()]
        question = {
            "key": key,
            "current": current,
            "proposals": [{"value": p.value, "writer": p.writer} for p in proposals],
        }
        contract = contracts.vote(len(proposals))

        async def ask(voter: str) -> int | None:
            from podium.engine.context import TaskFailed

            try:
                answer = await ctx.run_task(
                    f"vote-{step}-{index}-{voter}", TaskKind.VOTE, question, agent=voter, retries=0, contract=contract
                )
            except TaskFailed:
                return None  # no vote: it still counts in the electorate, so silence never makes a majority
            return contracts.read_vote(answer.output)

        choices = await parallel.gather(*(ask(v) for v in electorate))
        for voter, choice in zip(electorate, choices, strict=True):
            if choice is None:
                continue
            for number, proposal in enumerate(proposals, start=1):
                await self.state.vote(key, proposal.id, voter=voter, accept=choice == number)
        return await self.state.settle(key, voters=electorate)


def resolution_event(resolution: Resolution, step: str) -> dict[str, Any]:
    """What the run's event stream says about a resolution (the audit stream keeps all of it)."""
    return {
        "key": resolution.key,
        "strategy": resolution.strategy,
        "reason": resolution.reason,
        "writers": [c.writer for c in resolution.candidates],
        "step": step,
    }
