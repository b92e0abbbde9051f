"""peerToPeer: every participant proposes an improvement each round, the others review and score it, the best
proposals are applied; stop when a round changes the score less than the threshold, when no proposal reaches
minScore, or after maxRounds. A round with nothing to judge (no proposal, or no review carried a score) fails the
run when nothing was applied before it, else ends it degraded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from podium.api.orchestration import PeerToPeerSpec
from podium.dataplane.messages import TaskKind
from podium.engine import availability, contracts, parallel
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
    everyone = ctx.directory.all()
    peers = [a.name for a in ctx.usable(everyone)]
    for lost in [a for a in everyone if a.name not in peers]:
        ctx.degrade(f"peer {lost.name!r} unavailable ({availability.of(lost).reason}): it takes no part")
    if len(peers) < 2:
        raise StrategyFailed(f"peerToPeer needs at least two available participants, has {len(peers)}")
    solution, score = input, None
    applied_log: list[dict[str, Any]] = []
    rounds = 0
    propose, review = contracts.proposal(TaskKind.PROPOSE), contracts.review()
    for rounds in range(1, spec.max_rounds + 1):
        ctx.expect(len(peers))
        # Until a proposal is applied the solution is the input itself: not shown twice.
        state = {"input": input, "solution": solution if applied_log else None, "round": rounds}
        proposed = await parallel.gather(
            *(
                ctx.try_task(f"round-{rounds}-propose-{p}", TaskKind.PROPOSE, state, agent=p, contract=propose)
                for p in peers
            )
        )
        proposals = {p: r.output["solution"] for p, r in zip(peers, proposed, strict=True) if r is not None}
        pairs = [(author, reviewer) for author in proposals for reviewer in peers if reviewer != author]
        ctx.expect(len(pairs))  # reviews only of the proposals that came
        reviewed = await parallel.gather(
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
        if not any(scores.values()):
            # Nothing this round can be judged: no proposal, or no review of one. Without anything applied so
            # far the run has produced nothing usable; otherwise it keeps what it had and says it stopped early.
            what = "no review of a proposal came back" if proposals else "no peer proposed anything"
            if not applied_log:
                raise StrategyFailed(f"round {rounds}: {what}; nothing usable: " + "; ".join(ctx.notes[-3:]))
            ctx.degrade(f"round {rounds}: {what}; stopped with the solution of round {applied_log[-1]['round']}")
            break
        chosen = select(scores, spec.apply_top, spec.min_score)
        if not chosen:
            best = max(sum(s) / len(s) for s in scores.values() if s)
            kept = "the input unchanged" if not applied_log else f"the solution of round {applied_log[-1]['round']}"
            ctx.notes.append(
                f"round {rounds}: no proposal reached minScore {spec.min_score:g} (best mean {best:.2f}); "
                f"the result is {kept}"
            )
            break
        new_score = chosen[0][1]
        converged = round_converged(score, new_score, spec.convergence_threshold)
        solution = apply(solution, [proposals[a] for a, _ in chosen])
        score = new_score
        applied_log.append({"round": rounds, "applied": [{"author": a, "score": m} for a, m in chosen]})
        ctx.partial = solution
        await ctx.share("peerToPeer/solution", solution)
        if converged:
            ctx.notes.append(
                f"converged in round {rounds}: the best score moved less than {spec.convergence_threshold:g}"
            )
            break
    result = {"solution": solution, "score": score, "rounds": rounds, "applied": applied_log}
    return StrategyOutcome(result=result, degraded=ctx.degraded, notes=ctx.notes)
