"""swarm: explorers propose over generations, an evaluator scores, the best so far and the top-k are fed back;
stop at the target score, on convergence or after maxGenerations."""

from __future__ import annotations

from typing import Any

from podium.api.orchestration import SwarmSpec
from podium.dataplane.messages import TaskKind
from podium.engine import availability, contracts, parallel
from podium.engine.context import RunContext
from podium.engine.convergence import reached, swarm_converged
from podium.engine.directory import AgentDirectory
from podium.engine.strategies import StrategyFailed, StrategyOutcome


def top_k(pool: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Best k solutions by score; ties keep the earlier (older) one."""
    return sorted(pool, key=lambda s: -s["score"])[:k]


def needs(spec: SwarmSpec, directory: AgentDirectory) -> list[tuple[str, list[str]]]:
    explorers = [("exploration", [a.name for a in directory.by_role(spec.explorer_role)])]
    return explorers + ([("evaluation", [spec.evaluator])] if spec.evaluator else [])


async def run(ctx: RunContext, spec: SwarmSpec, input: Any) -> StrategyOutcome:
    members = ctx.directory.by_role(spec.explorer_role)
    if not members:
        raise StrategyFailed(f"swarm needs agents with role {spec.explorer_role!r}")
    explorers = [a.name for a in ctx.usable(members)]
    for lost in [a for a in members if a.name not in explorers]:
        ctx.degrade(f"explorer {lost.name!r} unavailable ({availability.of(lost).reason}): the swarm goes without it")
    if not explorers:
        raise StrategyFailed(f"no explorer (role {spec.explorer_role!r}) is available: " + "; ".join(ctx.notes))
    if spec.evaluator is not None:
        evaluators = [spec.evaluator]
    else:
        evaluators = [a.name for a in await ctx.ranked(ctx.directory.by_role(spec.evaluator_role))]
    if not evaluators:
        raise StrategyFailed(f"swarm needs spec.swarm.evaluator or agents with role {spec.evaluator_role!r}")
    best: dict[str, Any] | None = None
    knowledge: list[dict[str, Any]] = []
    history: list[float] = []
    generation = 0
    for generation in range(1, spec.max_generations + 1):
        ctx.expect(len(explorers) + 1)
        shared = {
            "input": input,
            "generation": generation,
            "best": best["solution"] if best else None,
            "bestScore": best["score"] if best else None,
            "knowledge": [k["solution"] for k in knowledge],
        }
        explore = contracts.proposal(TaskKind.EXPLORE)
        found = await parallel.gather(
            *(
                ctx.try_task(f"gen-{generation}-explore-{name}", TaskKind.EXPLORE, shared, agent=name, contract=explore)
                for name in explorers
            )
        )
        solutions = [(name, r.output["solution"]) for name, r in zip(explorers, found, strict=True) if r is not None]
        if not solutions:
            raise StrategyFailed(f"generation {generation}: no explorer produced a solution")
        evaluation = await ctx.run_task(
            f"gen-{generation}-evaluate",
            TaskKind.EVALUATE,
            {"input": input, "generation": generation, "solutions": [s for _, s in solutions]},
            agents=evaluators,
            contract=contracts.evaluate(len(solutions)),
        )
        scores = contracts.read_scores(evaluation.output)
        scored = [
            {"solution": s, "score": sc, "agent": name, "generation": generation}
            for (name, s), sc in zip(solutions, scores, strict=True)
        ]
        knowledge = top_k(knowledge + scored, spec.top_k)
        if best is None or knowledge[0]["score"] > best["score"]:
            best = knowledge[0]
        history.append(best["score"])
        ctx.partial = best
        await ctx.share("swarm/knowledge", knowledge)
        if reached(best["score"], spec.target_score):
            ctx.notes.append(f"target score {spec.target_score} reached in generation {generation}")
            break
        if swarm_converged(history, spec.convergence.threshold, spec.convergence.patience):
            ctx.notes.append(f"converged after {generation} generations")
            break
    assert best is not None
    result = {"best": best["solution"], "score": best["score"], "generations": generation, "knowledge": knowledge}
    return StrategyOutcome(result=result, degraded=ctx.degraded, notes=ctx.notes)
