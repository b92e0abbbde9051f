"""eventDriven: tasks start as soon as their dependencies finish. A task sent to several agents settles on all
of them and keeps the successes; it fails only when every agent failed. Dependents of a failed task are skipped;
the run fails only when every task failed (or a critical agent's task did)."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.api.orchestration import EventDrivenSpec, EventTask, Target
from podium.dataplane.messages import TaskKind
from podium.engine import contracts
from podium.engine.context import RunContext, TaskFailed
from podium.engine.degradation import Verdict, assess, partial_verdict
from podium.engine.graph import downstream, layers, ready
from podium.engine.strategies import StrategyFailed, StrategyOutcome


def _fan_out_agents(ctx: RunContext, task: EventTask) -> list[str] | None:
    """The agents a task goes to all at once, or None when it goes to one (the best) agent."""
    if task.agents is not None:
        return list(task.agents)
    if task.fan_out:
        target = Target(role=task.role, capability=task.capability)
        names = [a.name for a in ctx.directory.resolve(target)]
        if not names:
            raise StrategyFailed(f"task {task.name!r}: no agent has role/capability {task.role or task.capability!r}")
        return names
    return None


async def _run_one(ctx: RunContext, spec: EventDrivenSpec, task: EventTask, payload: Any) -> Any:
    fan = _fan_out_agents(ctx, task)
    if fan is None:
        target = Target(role=task.role, capability=task.capability)
        return (await ctx.run_task(f"task-{task.name}", TaskKind.EXECUTE, payload, target=target)).output
    if len(fan) == 1:
        return (await ctx.run_task(f"task-{task.name}", TaskKind.EXECUTE, payload, agent=fan[0])).output
    settled = await asyncio.gather(
        *(ctx.run_task(f"task-{task.name}-{a}", TaskKind.EXECUTE, payload, agent=a) for a in fan),
        return_exceptions=True,
    )
    outputs: dict[str, Any] = {}
    errors: list[str] = []
    for agent, outcome in zip(fan, settled, strict=True):
        if isinstance(outcome, TaskFailed):
            errors.append(str(outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            outputs[agent] = outcome.output
    verdict = partial_verdict(len(outputs), len(errors))
    if verdict is Verdict.FAIL:
        raise TaskFailed(f"task-{task.name}", errors, [])
    if verdict is Verdict.DEGRADE:
        ctx.degrade(f"task {task.name!r}: {len(errors)} of {len(fan)} agents failed")
    return outputs


async def run(ctx: RunContext, spec: EventDrivenSpec, input: Any) -> StrategyOutcome:
    tasks = {t.name: t for t in spec.tasks}
    deps = {t.name: list(t.depends_on) for t in spec.tasks}
    layers(deps)  # raises on cycles with the tasks involved
    ctx.expect(len(tasks) + (1 if spec.synthesizer else 0))
    outputs: dict[str, Any] = {}
    failed: dict[str, str] = {}
    skipped: set[str] = set()
    running: dict[asyncio.Task[Any], str] = {}
    started: set[str] = set()

    def launch() -> None:
        for name in ready(deps, set(outputs), started | skipped | set(failed)):
            task = tasks[name]
            payload = {
                "input": input if task.input is None else task.input,
                "task": name,
                "upstream": {d: outputs[d] for d in task.depends_on},
            }
            started.add(name)
            running[asyncio.ensure_future(_run_one(ctx, spec, task, payload))] = name

    launch()
    try:
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                exc = fut.exception()
                if exc is None:
                    outputs[name] = fut.result()
                    await ctx.share(f"eventDriven/{name}", outputs[name])
                elif isinstance(exc, TaskFailed | StrategyFailed):
                    if isinstance(exc, TaskFailed) and assess(exc.priorities) is Verdict.FAIL:
                        raise exc
                    failed[name] = str(exc)
                    for lost in sorted(downstream(deps, name) - skipped):
                        skipped.add(lost)
                        ctx.skip(f"task-{lost}", TaskKind.EXECUTE, f"dependency {name!r} failed")
                else:
                    raise exc
            launch()
    finally:
        for fut in running:
            fut.cancel()
    if not outputs:
        raise StrategyFailed("every task failed: " + "; ".join(failed.values()))
    if failed:
        ctx.degrade(f"{len(failed)} task(s) failed ({', '.join(sorted(failed))}); {len(skipped)} skipped")
    ctx.partial = outputs
    result: Any = outputs
    if spec.synthesizer:
        synthesis = await ctx.run_task(
            "synthesize",
            TaskKind.SYNTHESIZE,
            {"input": input, "results": outputs},
            agent=spec.synthesizer,
            contract=contracts.synthesis(),
        )
        result = synthesis.output
    return StrategyOutcome(result=result, degraded=ctx.degraded, notes=ctx.notes)
