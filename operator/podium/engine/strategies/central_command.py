"""centralCommand: a command center plans the tasks (or takes them from the spec) and assigns each to the best
available agent by a weighted score of capability, past performance and load (default 0.5 / 0.3 / 0.2)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from podium.api.orchestration import AssignmentWeights, CentralCommandSpec, PlannedTask
from podium.dataplane.messages import TaskKind
from podium.engine import availability, contracts
from podium.engine.context import RunContext, TaskFailed
from podium.engine.degradation import Verdict, assess
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.selection import assignment_score, capability_match, effective_load
from podium.engine.stats import PerfStats
from podium.engine.strategies import StrategyFailed, StrategyOutcome, work_input

FAILOVER = 3  # agents tried per task: the assigned one, then the next best


def assign(
    tasks: Sequence[PlannedTask],
    agents: Sequence[AgentInfo],
    stats: dict[str, PerfStats],
    weights: AssignmentWeights,
) -> dict[str, list[str]]:
    """For each task, capable agents best first: available ones, then ones still coming up (unavailable ones never),
    each by the weighted score. Greedy in task order: each assignment adds to the chosen agent's load, so equal
    agents share the work instead of one taking it all."""
    assigned: dict[str, int] = {}
    plan: dict[str, list[str]] = {}
    usable = availability.usable(list(agents))
    # What does not change from task to task, once (the plan of 64 tasks is on a run's critical path).
    state = {a.name: availability.of(a).state for a in usable}
    perf = {a.name: stats.get(a.name, PerfStats()).expected_success for a in usable}
    for task in tasks:
        capable = [a for a in usable if not task.capabilities or capability_match(a, task.capabilities)]

        def score(a: AgentInfo, task: PlannedTask = task) -> tuple[int, float, str]:
            load = effective_load(a, assigned.get(a.name, 0))
            points = assignment_score(capability_match(a, task.capabilities), perf[a.name], load, weights)
            return (state[a.name], -points, a.name)

        ranked = [a.name for a in sorted(capable, key=score)]
        plan[task.name] = ranked
        if ranked:
            assigned[ranked[0]] = assigned.get(ranked[0], 0) + 1
    return plan


def needs(spec: CentralCommandSpec, directory: AgentDirectory) -> list[tuple[str, list[str]]]:
    return [("planning", [spec.planner])] if spec.tasks is None and spec.planner else []


async def run(ctx: RunContext, spec: CentralCommandSpec, input: Any) -> StrategyOutcome:
    agents = ctx.directory.all()
    if spec.tasks is not None:
        tasks = list(spec.tasks)
        workers = agents
    else:
        planner = spec.planner or ctx.directory.lead(ctx.team)
        if planner is None:
            raise StrategyFailed("centralCommand needs spec.centralCommand.tasks, a planner, or a team with a lead")
        roster = [{"name": a.name, "role": a.role, "capabilities": a.capabilities} for a in agents]
        contract = contracts.plan(sorted({c for a in agents for c in a.capabilities}))
        plan = await ctx.run_task(
            "plan", TaskKind.PLAN, {"input": input, "agents": roster}, agent=planner, contract=contract
        )
        tasks = contracts.read_plan(plan.output)
        workers = [a for a in agents if a.name != planner] or agents  # the command center plans, others work
    ctx.expect(len(tasks))
    table = assign(tasks, workers, await ctx.perf(workers), spec.weights)

    async def execute(task: PlannedTask) -> Any:
        names = table[task.name][:FAILOVER]
        if not names:
            needed = ", ".join(task.capabilities) or "nothing in particular"
            raise TaskFailed(f"task-{task.name}", [f"no available agent (needs {needed})"], [])
        payload = work_input(task, input)
        return (await ctx.run_task(f"task-{task.name}", TaskKind.EXECUTE, payload, agents=names)).output

    settled = await asyncio.gather(*(execute(t) for t in tasks), return_exceptions=True)
    results: dict[str, Any] = {}
    for task, outcome in zip(tasks, settled, strict=True):
        if not isinstance(outcome, BaseException):
            results[task.name] = outcome
        elif isinstance(outcome, TaskFailed) and assess(outcome.priorities) is Verdict.DEGRADE:
            ctx.degrade(str(outcome))
        else:
            raise outcome
    if not results:
        raise StrategyFailed("every task failed: " + "; ".join(ctx.notes))
    assignments = {t.name: (table[t.name][0] if table[t.name] else None) for t in tasks}
    return StrategyOutcome(
        result={"results": results, "assignments": assignments}, degraded=ctx.degraded, notes=ctx.notes
    )
