"""market: a planner may first split the project into tasks (decomposition); each task is auctioned. Agents bid
(price, estimated seconds); bids are scored by price, capability, reputation and time (default 0.3 / 0.4 / 0.2 /
0.1); with no acceptable bid the reserve price and minimum score are relaxed and the task re-auctioned once. The
winner's reputation is updated from its result; an integrator may then integrate the results into one answer."""

from __future__ import annotations

from typing import Any

from podium.api.orchestration import MarketSpec, MarketTask
from podium.dataplane.messages import Result, TaskKind
from podium.engine import contracts, parallel
from podium.engine.context import RunContext, TaskFailed
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.selection import Bid, capability_match, winner
from podium.engine.strategies import StrategyFailed, StrategyOutcome, work_input


def parse_bid(agent: AgentInfo, output: Any, capability: float, reputation: float) -> Bid | None:
    """A bid from an answer that honours :func:`podium.engine.contracts.bid`; None for a decline."""
    offer = contracts.read_bid(output)
    if offer is None:
        return None
    price, seconds = offer
    return Bid(agent.name, price, seconds, capability, reputation)


def reserve(spec: MarketSpec, task: MarketTask) -> float | None:
    limits = [p for p in (spec.reserve_price, task.max_price) if p is not None]
    return min(limits) if limits else None


async def _auction(
    ctx: RunContext, spec: MarketSpec, task: MarketTask, bidders: list[AgentInfo], round_: int, ceiling: float | None
) -> list[Bid]:
    payload = {"task": task.name, "input": task.input, "capabilities": task.capabilities, "maxPrice": ceiling}

    async def bid(agent: AgentInfo) -> Result | None:
        try:
            return await ctx.run_task(
                f"auction-{task.name}-{round_}-bid-{agent.name}",
                TaskKind.BID,
                payload,
                agent=agent.name,
                contract=contracts.bid(),
                retries=0,
                timeout_seconds=spec.bid_timeout_seconds,
            )
        except TaskFailed:
            return None  # no answer is no bid

    answers = await parallel.gather(*(bid(a) for a in bidders))
    bids = []
    for agent, answer in zip(bidders, answers, strict=True):
        if answer is None:
            continue
        reputation = (await ctx.stats.get(agent.name)).reputation
        made = parse_bid(agent, answer.output, capability_match(agent, task.capabilities), reputation or 0.5)
        if made is not None:
            bids.append(made)
    return bids


def bidders(agents: list[AgentInfo], task: MarketTask) -> list[AgentInfo]:
    """Who may bid: the agents with one of the task's capabilities (any agent when it names none)."""
    return [a for a in agents if not task.capabilities or capability_match(a, task.capabilities) > 0]


async def _sell(ctx: RunContext, spec: MarketSpec, task: MarketTask, input: Any) -> dict[str, Any]:
    capable = bidders(ctx.directory.all(), task)
    asked = ctx.usable(capable)
    if not asked:
        lacking = "is available" if capable else f"has {', '.join(task.capabilities)}"
        raise StrategyFailed(f"task {task.name!r}: no agent {lacking}")
    ceiling, floor = reserve(spec, task), spec.min_score
    for round_ in (1, 2):
        ctx.expect(len(asked))  # the bids of this auction; the sale adds one step
        bids = await _auction(ctx, spec, task, asked, round_, ceiling)
        best, scores = winner(bids, spec.weights, reserve_price=ceiling, min_score=floor)
        if best is not None:
            break
        if round_ == 1:
            ceiling = None if ceiling is None else ceiling * spec.relax_factor
            floor = floor / spec.relax_factor
            ctx.notes.append(
                f"task {task.name!r}: no acceptable bid; re-auctioned with reserve {ceiling}, minScore {floor:.3g}"
            )
    if best is None:
        raise StrategyFailed(f"task {task.name!r}: no acceptable bid after re-auction ({len(bids)} bids)")
    ctx.expect(1)
    payload = {**work_input(task, input), "price": best.price}
    try:
        result = await ctx.run_task(f"task-{task.name}", TaskKind.EXECUTE, payload, agent=best.agent)
    except TaskFailed:
        await ctx.stats.update_reputation(best.agent, False, None)
        raise
    await ctx.stats.update_reputation(best.agent, True, result.quality)
    return {
        "output": result.output,
        "agent": best.agent,
        "price": best.price,
        "score": scores[best.agent],
        "round": round_,
    }


def needs(spec: MarketSpec, directory: AgentDirectory) -> list[tuple[str, list[str]]]:
    planning = [("planning", [spec.planner])] if spec.planner and spec.tasks is None else []
    return planning + ([("integration", [spec.integrator])] if spec.integrator else [])


async def _decompose(ctx: RunContext, spec: MarketSpec, input: Any) -> list[MarketTask]:
    """The tasks to auction: the spec's, the planner's split of the project, or the input as one task."""
    if spec.tasks is not None:
        return list(spec.tasks)
    if spec.planner is None:
        return [MarketTask(name="task", input=input)]
    agents = ctx.directory.all()
    roster = [{"name": a.name, "role": a.role, "capabilities": a.capabilities} for a in agents]
    ctx.expect(1)
    plan = await ctx.run_task(
        "plan",
        TaskKind.PLAN,
        {"input": input, "agents": roster},
        agent=spec.planner,
        contract=contracts.plan(sorted({c for a in agents for c in a.capabilities})),
    )
    return [MarketTask(**t.model_dump()) for t in contracts.read_plan(plan.output)]


async def run(ctx: RunContext, spec: MarketSpec, input: Any) -> StrategyOutcome:
    tasks = await _decompose(ctx, spec, input)
    sold: dict[str, Any] = {}
    for task in tasks:  # in order: each result updates reputations the next auction uses
        try:
            sold[task.name] = await _sell(ctx, spec, task, input)
        except (TaskFailed, StrategyFailed) as exc:
            ctx.degrade(str(exc))
    if not sold:
        raise StrategyFailed("no task was sold: " + "; ".join(ctx.notes))
    ctx.partial = sold
    if spec.integrator is not None:
        ctx.expect(1)
        integration = await ctx.run_task(
            "integrate",
            TaskKind.SYNTHESIZE,
            {"input": input, "results": {name: sale["output"] for name, sale in sold.items()}},
            agent=spec.integrator,
            contract=contracts.synthesis(),
        )
        return StrategyOutcome(result={**integration.output, "tasks": sold}, degraded=ctx.degraded, notes=ctx.notes)
    single = spec.tasks is None and spec.planner is None
    result = sold["task"]["output"] if single else sold
    return StrategyOutcome(result=result, degraded=ctx.degraded, notes=ctx.notes)
