"""peerToPeer: every participant proposes an improvement each round, the others review and score it, the best
proposals are applied; stop when a round changes the score less than the threshold, or after maxRounds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from podium.api.orchestration import PeerToPeerSpec
from podium.dataplane.messages import TaskKind
from podium.engine import contracts
from podium.engine.context import RunContext
from podium.engine.convergence import round_converged
from podium.engine.strategies import StrategyFailed, StrategyOutcome


def select(scores: dict[str, list[float]], apply_top: int, min_score: float) -> list[tuple[str, float]]:
    """Proposals to apply: mean review score at least ``min_score``, best first, at most ``apply_top``."""
    means = {author: sum(s) / len(s) for author, s in scores.items() if s}
    chosen = sorted(((a, m) for a, m in means.items() if m >= min_score), key=lambda am: (-am[1], am[0]))
    return chosen[:apply_top]


def apply(solution: Any, proposals: Sequence[Any]) -> Any:
    """Apply proposals (best first). Objects are merged so the best proposal wins conflicts; anything else is
    replaced by the best proposal."""
    if proposals and all(isinstance(p, dict) for p in proposals):
        merged: dict[str, Any] = dict(solution) if isinstance(solution, dict) else {}
        for proposal in reversed(proposals):
            merged.update(proposal)
        return merged
    return proposals[0] if proposals else solution


async def run(ctx: RunContext, spec: PeerToPeerSpec, input: Any) -> StrategyOutcome:
    peers = [a.name for a in ctx.directory.all() if a.ready] or [a.name for a in ctx.directory.all()]
    if len(peers) < 2:
        raise StrategyFailed("peerToPeer needs at least two participants to review each other")
    solution, score = input, None
    applied_log: list[dict[str, Any]] = []
    rounds = 0
    propose, review = contracts.proposal(TaskKind.PROPOSE), contracts.review()
    for rounds in range(1, spec.max_rounds + 1):
        ctx.expect(len(peers) * len(peers))
        # Until a proposal is applied the solution is the input itself: not shown twice.
        state = {"input": input, "solution": solution if applied_log else None, "round": rounds}
        proposed = await asyncio.gather(
            *(
                ctx.try_task(f"round-{rounds}-propose-{p}", TaskKind.PROPOSE, state, agent=p, contract=propose)
                for p in peers
            )
        )
        proposals = {p: r.output["solution"] for p, r in zip(peers, proposed, strict=True) if r is not None}
        pairs = [(author, reviewer) for author in proposals for reviewer in peers if reviewer != author]
        reviewed = await asyncio.gather(
            *(
                ctx.try_task(
                    f"round-{rounds}-review-{author}-by-{reviewer}",
                    TaskKind.REVIEW,
                    {**state, "proposal": proposals[author], "author": author},
                    agent=reviewer,
                    contract=review,
                )
                for author, reviewer in pairs
            )
        )
        scores: dict[str, list[float]] = {a: [] for a in proposals}
        for (author, _), r in zip(pairs, reviewed, strict=True):
            if r is not None:
                scores[author].append(contracts.read_review(r.output))
        chosen = select(scores, spec.apply_top, spec.min_score)
        new_score = chosen[0][1] if chosen else None
        converged = round_converged(score, new_score, spec.convergence_threshold)
        if chosen:
            solution = apply(solution, [proposals[a] for a, _ in chosen])
            score = new_score
            applied_log.append({"round": rounds, "applied": [{"author": a, "score": m} for a, m in chosen]})
            ctx.partial = solution
            await ctx.share("peerToPeer/solution", solution)
        if converged:
            ctx.notes.append(f"converged in round {rounds}")
            break
    result = {"solution": solution, "score": score, "rounds": rounds, "applied": applied_log}
    return StrategyOutcome(result=result, degraded=ctx.degraded, notes=ctx.notes)
