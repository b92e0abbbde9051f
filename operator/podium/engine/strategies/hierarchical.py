"""hierarchical: a coordinator plans and hands each team its part; inside a team research and analysis run in
parallel, then the team synthesises; the coordinator integrates the team results."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.api.orchestration import HierarchicalSpec
from podium.dataplane.messages import TaskKind
from podium.engine import contracts
from podium.engine.context import RunContext, TaskFailed
from podium.engine.degradation import Verdict, assess
from podium.engine.strategies import StrategyFailed, StrategyOutcome


async def _team(ctx: RunContext, spec: HierarchicalSpec, team: str, part: Any) -> Any:
    members = ctx.directory.in_team(team)
    if not members:
        raise StrategyFailed(f"team {team!r} has no agents in scope")
    ranked = await ctx.ranked(members)
    researchers = [a.name for a in ranked if a.role == spec.research_role]
    analysts = [a.name for a in ranked if a.role == spec.analysis_role]
    lead = ctx.directory.lead(team)
    synthesizers = [a.name for a in ranked if a.role == spec.synthesis_role] or ([lead] if lead else [])
    if not synthesizers:
        raise StrategyFailed(f"team {team!r} has no {spec.synthesis_role!r} agent and no lead to synthesise")

    async def work(kind: str, names: list[str]) -> Any:
        if not names:
            ctx.degrade(f"team {team!r} has no {kind} agent")
            return None
        result = await ctx.try_task(f"team-{team}-{kind}", TaskKind.EXECUTE, {"task": part, "team": team}, agents=names)
        return result.output if result else None

    research, analysis = await asyncio.gather(work("research", researchers), work("analysis", analysts))
    if research is None and analysis is None:
        raise StrategyFailed(f"team {team!r}: neither research nor analysis produced anything")
    result = await ctx.run_task(
        f"team-{team}-synthesis",
        TaskKind.SYNTHESIZE,
        {"task": part, "team": team, "research": research, "analysis": analysis},
        agents=synthesizers,
        contract=contracts.synthesis(),
    )
    return result.output


async def run(ctx: RunContext, spec: HierarchicalSpec, input: Any) -> StrategyOutcome:
    coordinator = spec.coordinator or ctx.directory.lead(ctx.team)
    if coordinator is None:
        raise StrategyFailed("hierarchical needs spec.hierarchical.coordinator or a team with a lead")
    ctx.expect(2 + 4 * len(spec.teams))
    plan = await ctx.run_task(
        "plan",
        TaskKind.PLAN,
        {"input": input, "teams": spec.teams},
        agent=coordinator,
        contract=contracts.assignments(spec.teams),
    )
    parts = contracts.read_assignments(plan.output)
    settled = await asyncio.gather(*(_team(ctx, spec, t, parts[t]) for t in spec.teams), return_exceptions=True)
    outputs: dict[str, Any] = {}
    for team, outcome in zip(spec.teams, settled, strict=True):
        if not isinstance(outcome, BaseException):
            outputs[team] = outcome
        elif _team_loss(outcome):
            ctx.degrade(f"team {team!r} lost: {outcome}")
        else:
            raise outcome
    if not outputs:
        raise StrategyFailed("every team failed: " + "; ".join(ctx.notes[-len(spec.teams) :]))
    ctx.partial = outputs
    final = await ctx.run_task(
        "integrate",
        TaskKind.SYNTHESIZE,
        {"input": input, "plan": parts, "teams": outputs},
        agent=coordinator,
        contract=contracts.synthesis(),
    )
    return StrategyOutcome(result=final.output, degraded=ctx.degraded, notes=ctx.notes)


def _team_loss(exc: BaseException) -> bool:
    """A team that failed on its own work costs the run a part; budgets, cancels and critical losses stop it."""
    if isinstance(exc, StrategyFailed):
        return True
    return isinstance(exc, TaskFailed) and assess(exc.priorities) is Verdict.DEGRADE
