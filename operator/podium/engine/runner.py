"""One call runs one Orchestration to its end: what the operator and the CLI call.

Running it again with the same uid after a crash or a cancel resumes: the journal replays finished steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as aioredis

from podium.api.orchestration import Limits, OrchestrationSpec
from podium.dataplane.records import ReplicaInfo
from podium.engine import availability, tracing
from podium.engine.approval import NotApproved
from podium.engine.budget import BudgetExceeded, LiveLimits
from podium.engine.collaboration import Collaboration
from podium.engine.context import (
    EventHook,
    ProgressCallback,
    Refresh,
    RunCancelled,
    RunContext,
    RunOptions,
    SuspendProbe,
    TaskBus,
    TaskFailed,
)
from podium.engine.directory import AgentDirectory, UnknownAgent
from podium.engine.kept import Kept
from podium.engine.progress import TaskRecord
from podium.engine.strategies import StrategyFailed, StrategyOutcome, get, needs

if TYPE_CHECKING:
    from podium.dataplane.bus import Bus

SUCCEEDED = "Succeeded"
FAILED = "Failed"


@dataclass
class RunOutcome:
    phase: str  # Succeeded | Failed
    result: Any = None
    degraded: bool = False
    cost: float = 0.0
    tokens: int = 0
    message: str = ""
    reason: str = ""  # short CamelCase, for the condition and the Event
    tasks: list[TaskRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Queued tasks taken back, by agent: attempts the run stopped waiting for, and what was left at its end.
    withdrawn: dict[str, int] = field(default_factory=dict)


def _scope(directory: AgentDirectory, spec: OrchestrationSpec) -> AgentDirectory:
    if spec.strategy == "hierarchical" and spec.team is None:
        return directory  # the teams it names are its scope, resolved per team
    return directory.scoped(team=spec.team, selector=spec.agent_selector)


class RunBus(TaskBus, Protocol):
    """What a run needs of :class:`podium.dataplane.bus.Bus`: the task bus, plus live replicas for their load."""

    async def replicas(self, namespace: str, agent: str) -> list[ReplicaInfo]: ...
    async def cancel(self, orchestration: str, agents: Iterable[str], uid: str | None = None) -> dict[str, int]: ...


def _default_bus(redis: aioredis.Redis) -> Bus:
    from podium.dataplane.bus import Bus  # imported late: the bus pulls in its Lua scripts

    return Bus(redis)


async def _with_live_load(bus: RunBus, directory: AgentDirectory, namespace: str) -> AgentDirectory:
    """Loads from the replicas' heartbeats, so selection avoids busy agents."""
    names = [agent.name for agent in directory.all()]
    many = getattr(bus, "replicas_many", None)  # one round trip for all of them, where the bus can
    if many is not None:
        found = await many(namespace, names)
    else:
        found = {name: await bus.replicas(namespace, name) for name in names}
    loads = {name: sum(float(r.load) for r in alive) / len(alive) for name, alive in found.items() if alive}
    return directory.with_load(loads)


async def run_orchestration(
    redis: aioredis.Redis,
    directory: AgentDirectory,
    namespace: str,
    name: str,
    uid: str,
    spec: OrchestrationSpec,
    on_progress: ProgressCallback | None = None,
    *,
    bus: RunBus | None = None,
    state: Any = None,
    is_suspended: SuspendProbe | None = None,
    options: RunOptions | None = None,
    agents: Refresh | None = None,
    on_event: EventHook | None = None,
    kept: Kept | None = None,
    limits: LiveLimits | None = None,
) -> RunOutcome:
    """Run ``spec`` over the agents of ``directory``; ``agents``, when given, reads them again (the operator's live
    view), so availability is decided on what is true when each step needs an agent. ``kept``: the copy of what the
    run wrote, for a caller that runs it again after an error (:mod:`podium.engine.kept`). ``limits``: the run's
    limits, when the caller may change them while it runs (else ``spec.limits``)."""
    # A bus of its own (no caller's): closed at the end, or its result reader would read on after the run, holding
    # a connection of the caller's pool. The operator passes one bus shared by all its runs.
    own: Bus | None = None
    if bus is None:
        bus = own = _default_bus(redis)
    try:
        from podium.dataplane.state import SharedState

        if state is None:
            state = SharedState(redis, namespace, name, resolution=str(spec.conflict_resolution))  # type: ignore[arg-type]
        collab = Collaboration(redis, namespace, name, uid, spec, state) if isinstance(state, SharedState) else None
        try:
            scoped, lost = _scope(directory, spec), ""
        except UnknownAgent as exc:  # its team is gone: deleted since the run started (found when it is taken up)
            scoped, lost = AgentDirectory([]), str(exc)
        refresh: Refresh | None = None
        if agents is not None:
            read = agents

            async def rescoped() -> AgentDirectory:
                return await _with_live_load(bus, _scope(await read(), spec), namespace)

            refresh = rescoped
        ctx = RunContext(
            redis=redis,
            bus=bus,
            directory=scoped,
            uid=uid,
            namespace=namespace,
            name=name,
            limits=limits or spec.limits,
            state=state,
            team=spec.team,
            on_progress=on_progress,
            is_suspended=is_suspended,
            options=options,
            collab=collab,
            refresh=refresh,
            agent_wait_seconds=float(spec.agent_wait_seconds),
            on_event=on_event,
            kept=kept,
        )
        if lost:
            return _finish(ctx, FAILED, "TeamNotFound", f"{lost}: the run has no agents to go on with")
        if not len(scoped):
            return _finish(ctx, FAILED, "NoAgents", "no agents in scope: check spec.team / spec.agentSelector")
        block = spec.block()
        ctx.directory = await _started(ctx, _with_live_load(bus, scoped, namespace))
        if collab is not None:
            await collab.start(ctx)
        # A run taken up again (operator restart, another replica taking over) says so: it did not start twice.
        # Announced, not published: it goes with the first step's reads instead of a round trip of its own (and
        # run.finished with any writes still waiting at the end).
        ctx.announce(
            "run.resumed" if ctx.budget.resumed else "run.started", {"uid": uid, "strategy": str(spec.strategy)}
        )
        outcome = _unstartable(ctx, spec, block) or await _execute(ctx, spec, block)
        outcome.withdrawn = await _withdraw(ctx, bus)
        finished = {"uid": uid, "phase": outcome.phase, "reason": outcome.reason, "message": outcome.message[:1000]}
        ctx.announce("run.finished", finished | ({"withdrawn": outcome.withdrawn} if outcome.withdrawn else {}))
        await ctx.settle_writes()  # the last step's writes and run.finished: nothing is left to ride
        return outcome
    finally:
        if own is not None:
            await own.close()


async def _started(ctx: RunContext, loading: Awaitable[AgentDirectory]) -> AgentDirectory:
    """The run started (:meth:`RunContext.start`) while the agents' loads are read (``loading``), not a round trip
    after it; the directory with the loads. Either one's error is raised as it is (no group of them), the other
    read abandoned."""
    loads = asyncio.ensure_future(loading)
    try:
        await ctx.start()
    except BaseException:
        loads.cancel()
        loads.add_done_callback(lambda t: t.cancelled() or t.exception())  # its own error, if any, is not news
        raise
    return await loads


async def _withdraw(ctx: RunContext, bus: RunBus) -> dict[str, int]:
    """The run is over but some tasks it handed out never reported (it failed or was cancelled with work in flight,
    or a withdrawal while it went on found the task delivered or could not reach Redis): still-queued ones are
    withdrawn from their agents' inboxes, so nothing runs, or wakes an autoscaled agent, for a finished run;
    delivered ones are settled as cancelled by their consumer. Returns the entries removed now and while the run
    went on (:meth:`RunContext._withdraw`), by agent."""
    taken = dict(ctx.withdrawn)
    agents = sorted(set(ctx.unsettled.values()))
    if agents:
        for agent, n in (await bus.cancel(ctx.orchestration, agents, ctx.uid)).items():
            if n:
                taken[agent] = taken.get(agent, 0) + n
    return taken


def _unstartable(ctx: RunContext, spec: OrchestrationSpec, block: Any) -> RunOutcome | None:
    """Up front, before any dispatch: a spec naming an unknown agent, or work only unavailable critical agents
    could do, ends the run at once rather than after the work before it was done (and paid for)."""
    try:
        named = [
            (what, [ctx.directory.get(n) for n in names]) for what, names in needs(spec.strategy, block, ctx.directory)
        ]
    except UnknownAgent as exc:
        return _finish(ctx, FAILED, "InvalidSpec", str(exc))
    problem = availability.blocked(named)
    return None if problem is None else _finish(ctx, FAILED, "AgentUnavailable", problem)


@tracing.run
async def _execute(ctx: RunContext, spec: OrchestrationSpec, block: Any) -> RunOutcome:
    strategy = get(str(spec.strategy))
    clock = ctx.options.clock
    remaining = await ctx.budget.remaining_seconds(clock())
    loop = asyncio.get_running_loop()
    try:
        # The budget check before each dispatch stops new work; this stops a run stuck waiting.
        async with asyncio.timeout(max(remaining, 0.0)) as deadline:

            def moved(_: Limits) -> None:  # timeoutSeconds edited while the run runs: its deadline moves with it
                deadline.reschedule(loop.time() + max(ctx.budget.remaining_after_start(clock()), 0.0))

            unfollow = ctx.budget.live.listen(moved)
            try:
                outcome = await _with_router(ctx, strategy(ctx, block, spec.input))
                if ctx.collab is not None:
                    ctx.partial = outcome.result
                    await ctx.collab.approve_result(ctx, outcome.result)
            finally:
                unfollow()
    except TimeoutError:
        usage = await ctx.budget.usage(clock())
        exc = BudgetExceeded("timeoutSeconds", round(usage.elapsed, 3), ctx.limits.timeout_seconds)
        return _finish(ctx, FAILED, "BudgetExceeded", str(exc), ctx.partial)
    except BudgetExceeded as exc:
        return _finish(ctx, FAILED, "BudgetExceeded", str(exc), ctx.partial)
    except RunCancelled as exc:
        return _finish(ctx, FAILED, "Cancelled", f"run cancelled: {exc}", ctx.partial)
    except TaskFailed as exc:
        reason = "AgentUnavailable" if exc.for_want_of_agents else "TaskFailed"
        return _finish(ctx, FAILED, reason, str(exc), ctx.partial)
    except StrategyFailed as exc:
        return _finish(ctx, FAILED, "StrategyFailed", str(exc), ctx.partial)
    except NotApproved as exc:
        return _finish(ctx, FAILED, exc.reason, str(exc), ctx.partial)
    except UnknownAgent as exc:
        return _finish(ctx, FAILED, "InvalidSpec", str(exc))
    reason = "Degraded" if outcome.degraded else "Completed"
    message = "; ".join(outcome.notes) if outcome.degraded else "completed"
    done = _finish(ctx, SUCCEEDED, reason, message, outcome.result)
    done.degraded = outcome.degraded
    return done


async def _with_router(ctx: RunContext, work: Awaitable[StrategyOutcome]) -> StrategyOutcome:
    """The strategy, with message tasks for idle subscribers routed beside it until it returns."""
    if ctx.collab is None:
        return await work
    router = ctx.collab.router(ctx)
    routing = asyncio.create_task(router.run(), name=f"router {ctx.orchestration}")
    try:
        outcome = await work
    except BaseException:
        routing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await routing
        raise
    router.stop()
    await routing  # the message tasks it started finish (the run's timeout still bounds them)
    return outcome


def _finish(ctx: RunContext, phase: str, reason: str, message: str, result: Any = None) -> RunOutcome:
    ctx.cancel_unfinished(f"the run ended ({reason}) before this task did")
    progress = ctx.progress()
    return RunOutcome(
        phase=phase,
        result=result,
        degraded=ctx.degraded,
        cost=progress.cost,
        tokens=progress.tokens,
        message=message,
        reason=reason,
        tasks=progress.tasks,
        notes=list(ctx.notes),
    )


__all__ = ["FAILED", "SUCCEEDED", "RunOutcome", "run_orchestration"]
