"""hierarchical: a coordinator plans and gives each team its tasks; the teams work in parallel, each on its tasks
in order: research and analysis in parallel, then a synthesis, by the members whose roles the team maps to those
phases; the coordinator integrates the team results."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from podium.api.orchestration import HierarchicalSpec
from podium.dataplane.messages import TaskKind
from podium.engine import contracts, parallel
from podium.engine.context import RunContext, TaskFailed
from podium.engine.degradation import Verdict, assess
from podium.engine.directory import AgentDirectory, TeamInfo
from podium.engine.strategies import StrategyFailed, StrategyOutcome

PHASES = ("research", "analysis", "synthesis")


@dataclass(frozen=True)
class Crew:
    """Who does each phase of a team's tasks, best first."""

    research: list[str]
    analysis: list[str]
    synthesis: list[str]


def roles(team: TeamInfo, spec: HierarchicalSpec) -> dict[str, str]:
    """The member role of each phase: the team's own map (Team spec.roles), else the orchestration's."""
    defaults = {"research": spec.research_role, "analysis": spec.analysis_role, "synthesis": spec.synthesis_role}
    return {phase: team.role(phase, default) for phase, default in defaults.items()}


def needs(spec: HierarchicalSpec, directory: AgentDirectory) -> list[tuple[str, list[str]]]:
    return [("planning and integration", [spec.coordinator])] if spec.coordinator else []


async def _crew(ctx: RunContext, spec: HierarchicalSpec, team: str) -> Crew:
    members = ctx.directory.in_team(team)
    if not members:
        raise StrategyFailed(f"team {team!r} has no agents in scope")
    info = ctx.directory.team(team)
    by_phase = roles(info, spec)
    ranked = await ctx.ranked(ctx.usable(members))
    crew = Crew(*([a.name for a in ranked if a.role == by_phase[phase]] for phase in PHASES))
    if not crew.research and not crew.analysis:
        raise StrategyFailed(
            f"team {team!r} has no available member with role {by_phase['research']!r} or "
            f"{by_phase['analysis']!r} (map its roles in the Team's spec.roles)"
        )
    synthesis = crew.synthesis or ([info.lead] if info.lead else [])
    if not synthesis:
        raise StrategyFailed(f"team {team!r} has no {by_phase['synthesis']!r} member and no lead to synthesise")
    for phase in ("research", "analysis"):
        if not getattr(crew, phase):
            ctx.degrade(f"team {team!r} has no available {by_phase[phase]!r} member: its tasks get no {phase}")
    return Crew(crew.research, crew.analysis, synthesis)


async def _task(ctx: RunContext, team: str, crew: Crew, n: int, task: str, input: Any) -> Any:
    """One task of the team's part: research and analysis in parallel, then the synthesis; None if lost."""
    work = {"input": input, "task": task, "team": team}

    async def phase(name: str, agents: list[str]) -> Any:
        if not agents:
            return None
        result = await ctx.try_task(f"team-{team}-{n}-{name}", TaskKind.EXECUTE, work, agents=agents)
        return result.output if result else None

    research, analysis = await parallel.gather(phase("research", crew.research), phase("analysis", crew.analysis))
    if research is None and analysis is None:
        ctx.degrade(f"team {team!r} task {n}: neither research nor analysis produced anything")
        return None
    result = await ctx.try_task(
        f"team-{team}-{n}-synthesis",
        TaskKind.SYNTHESIZE,
        {**work, "research": research, "analysis": analysis},
        agents=crew.synthesis,
        contract=contracts.synthesis(),
    )
    return result.output if result else None


async def _team(ctx: RunContext, spec: HierarchicalSpec, team: str, tasks: list[str], input: Any) -> list[Any]:
    """The team's tasks in order (the pattern's execute_tasks); their syntheses are the team's result."""
    crew = await _crew(ctx, spec, team)
    ctx.expect(len(tasks) * (bool(crew.research) + bool(crew.analysis) + 1))
    done = [await _task(ctx, team, crew, n, task, input) for n, task in enumerate(tasks, 1)]
    kept = [d for d in done if d is not None]
    if not kept:
        raise StrategyFailed(f"team {team!r}: none of its {len(tasks)} tasks produced a synthesis")
    return kept


async def run(ctx: RunContext, spec: HierarchicalSpec, input: Any) -> StrategyOutcome:
    coordinator = spec.coordinator or ctx.directory.lead(ctx.team)
    if coordinator is None:
        raise StrategyFailed("hierarchical needs spec.hierarchical.coordinator or a team with a lead")
    ctx.expect(1)
    plan = await ctx.run_task(
        "plan",
        TaskKind.PLAN,
        {"input": input, "teams": spec.teams},
        agent=coordinator,
        contract=contracts.assignments(spec.teams),
    )
    parts = contracts.read_assignments(plan.output)
    settled = await asyncio.gather(*(_team(ctx, spec, t, parts[t], input) for t in spec.teams), return_exceptions=True)
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
    ctx.expect(1)
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
