"""swarm: explorers propose over generations, an evaluator scores, the best so far and the top-k are fed back;
stop at the target score, on convergence or after maxGenerations."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.api.orchestration import SwarmSpec
from podium.dataplane.messages import TaskKind
from podium.engine.context import RunContext
from podium.engine.convergence import reached, swarm_converged
from podium.engine.strategies import StrategyFailed, StrategyOutcome


def parse_scores(output: Any, count: int) -> list[float]:
    """The evaluator's scores, one per solution in [0, 1]: a list of numbers, of ``{"score": x}`` objects, or
    ``{"scores": [...]}``. Raises ValueError with what was wrong."""
    raw = output.get("scores") if isinstance(output, dict) else output
    if not isinstance(raw, list) or len(raw) != count:
        raise ValueError(f"expected {count} scores (a list, or an object with 'scores'), got {output!r:.200}")
    scores = []
    for item in raw:
        value = item.get("score") if isinstance(item, dict) else item
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"score {value!r} is not a number")
        scores.append(min(1.0, max(0.0, float(value))))
    return scores


def top_k(pool: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Best k solutions by score; ties keep the earlier (older) one."""
    return sorted(pool, key=lambda s: -s["score"])[:k]


def _scores_error(count: int) -> Any:
    def check(output: Any) -> str | None:
        try:
            parse_scores(output, count)
        except ValueError as exc:
            return str(exc)
        return None

    return check


async def run(ctx: RunContext, spec: SwarmSpec, input: Any) -> StrategyOutcome:
    explorers = [a.name for a in ctx.directory.by_role(spec.explorer_role)]
    if not explorers:
        raise StrategyFailed(f"swarm needs agents with role {spec.explorer_role!r}")
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
        shared = {"input": input, "generation": generation, "best": best, "knowledge": knowledge}
        found = await asyncio.gather(
            *(
                ctx.try_task(f"gen-{generation}-explore-{name}", TaskKind.EXPLORE, shared, agent=name)
                for name in explorers
            )
        )
        solutions = [(name, r.output) for name, r in zip(explorers, found, strict=True) if r is not None]
        if not solutions:
            raise StrategyFailed(f"generation {generation}: no explorer produced a solution")
        evaluation = await ctx.run_task(
            f"gen-{generation}-evaluate",
            TaskKind.EVALUATE,
            {"input": input, "generation": generation, "solutions": [s for _, s in solutions]},
            agents=evaluators,
            validate=_scores_error(len(solutions)),
        )
        scores = parse_scores(evaluation.output, len(solutions))
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
