"""eventDriven: tasks start as soon as their dependencies finish. A task sent to several agents settles on all
of them and keeps the successes (synthesised into one answer per task when a synthesizer is set); it fails only
when every agent failed. Dependents of a failed task are skipped; the run fails only when every task failed (or a
critical agent's task did). The pattern's events go on the run's event stream: task.created, task.completed,
agent.available, workflow.failed and task.no_agents_available."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.api.orchestration import EventDrivenSpec, EventTask, Target
from podium.dataplane.messages import TaskKind
from podium.engine import contracts
from podium.engine.context import RunContext, TaskFailed
from podium.engine.degradation import Verdict, assess, partial_verdict
from podium.engine.directory import AgentDirectory
from podium.engine.graph import downstream, layers, ready
from podium.engine.strategies import StrategyFailed, StrategyOutcome


def _target(task: EventTask) -> Target:
    return Target(role=task.role, capability=task.capability, weights=task.weights)


def _fan_out_agents(directory: AgentDirectory, task: EventTask) -> list[str] | None:
    """The agents a task goes to all at once, or None when it goes to one (the best) agent."""
    if task.agents is not None:
        return list(task.agents)
    if task.fan_out:
        return [a.name for a in directory.resolve(_target(task))]
    return None


def needs(spec: EventDrivenSpec, directory: AgentDirectory) -> list[tuple[str, list[str]]]:
    """Each task's agents (all of a fan-out: it fails only when every one does) and the synthesizer."""
    found = [(f"task {t.name!r}", _fan_out_agents(directory, t) or directory.names(_target(t))) for t in spec.tasks]
    return found + ([("synthesis", [spec.synthesizer])] if spec.synthesizer else [])


async def _run_one(ctx: RunContext, spec: EventDrivenSpec, task: EventTask, payload: Any) -> tuple[Any, list[str]]:
    """The task's output and the agents that produced it."""
    step = f"task-{task.name}"
    fan = _fan_out_agents(ctx.directory, task)
    if fan is None:
        result = await ctx.run_task(step, TaskKind.EXECUTE, payload, target=_target(task))
        return result.output, [result.agent or ""]
    if not fan:
        await ctx.publish("task.no_agents_available", {"step": step, "agents": [], "why": ["no matching agent"]})
        raise TaskFailed(step, [f"no agent has role/capability {task.role or task.capability!r}"], [])
    if len(fan) == 1:
        result = await ctx.run_task(step, TaskKind.EXECUTE, payload, agent=fan[0])
        return result.output, fan
    ctx.expect(len(fan) - 1 + (1 if spec.synthesizer else 0))  # the task was announced as one step
    settled = await asyncio.gather(
        *(ctx.run_task(f"{step}-{a}", TaskKind.EXECUTE, payload, agent=a) for a in fan),
        return_exceptions=True,
    )
    outputs: dict[str, Any] = {}
    lost: list[TaskFailed] = []
    for agent, outcome in zip(fan, settled, strict=True):
        if isinstance(outcome, TaskFailed):
            lost.append(outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            outputs[agent] = outcome.output
    verdict = partial_verdict(len(outputs), len(lost))
    if verdict is Verdict.FAIL:
        # All failed: the task is lost, and with it the run when its agents are critical.
        raise TaskFailed(
            step,
            [str(e) for e in lost],
            ctx.priorities(fan),
            unavailable=[a for e in lost for a in e.unavailable],
            attempts=sum(e.attempts for e in lost),
            subject=f"task {task.name!r} (all {len(fan)} agents)",
        )
    if verdict is Verdict.DEGRADE:
        ctx.degrade(f"task {task.name!r}: {len(lost)} of {len(fan)} agents failed")
    if spec.synthesizer is None:
        return outputs, list(outputs)
    synthesis = await ctx.run_task(
        f"{step}-synthesize",
        TaskKind.SYNTHESIZE,
        {"input": payload["input"], "task": task.name, "results": outputs},
        agent=spec.synthesizer,
        contract=contracts.synthesis(),
    )
    return synthesis.output, list(outputs)


async def run(ctx: RunContext, spec: EventDrivenSpec, input: Any) -> StrategyOutcome:
    tasks = {t.name: t for t in spec.tasks}
    deps = {t.name: list(t.depends_on) for t in spec.tasks}
    layers(deps)  # raises on cycles with the tasks involved
    ctx.expect(len(tasks))
    outputs: dict[str, Any] = {}
    failed: dict[str, str] = {}
    skipped: set[str] = set()
    running: dict[asyncio.Task[tuple[Any, list[str]]], str] = {}
    started: set[str] = set()

    async def launch() -> None:
        for name in ready(deps, set(outputs), started | skipped | set(failed)):
            task = tasks[name]
            payload = {
                "input": input if task.input is None else task.input,
                "task": name,
                "upstream": {d: outputs[d] for d in task.depends_on},
            }
            started.add(name)
            await ctx.publish("task.created", {"task": name, "dependsOn": task.depends_on})
            running[asyncio.ensure_future(_run_one(ctx, spec, task, payload))] = name

    await launch()
    try:
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                exc = fut.exception()
                if exc is None:
                    outputs[name], agents = fut.result()
                    await ctx.share(f"eventDriven/{name}", outputs[name])
                    await ctx.publish("task.completed", {"task": name, "agents": agents})
                    await ctx.publish("agent.available", {"agents": agents})
                elif isinstance(exc, TaskFailed | StrategyFailed):
                    await ctx.publish("workflow.failed", {"task": name, "error": str(exc)[:1000]})
                    if isinstance(exc, TaskFailed) and assess(exc.priorities) is Verdict.FAIL:
                        raise exc
                    failed[name] = str(exc)
                    for lost in sorted(downstream(deps, name) - skipped):
                        skipped.add(lost)
                        ctx.skip(f"task-{lost}", TaskKind.EXECUTE, f"dependency {name!r} failed")
                else:
                    raise exc
            await launch()
    finally:  # tasks still running end with the strategy, before the run settles (parallel.gather's rule)
        for fut in running:
            fut.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    if not outputs:
        raise StrategyFailed("every task failed: " + "; ".join(failed.values()))
    if failed:
        lost = "; ".join(failed[n] for n in sorted(failed))
        ctx.degrade(f"{len(failed)} task(s) failed, {len(skipped)} skipped: {lost}")
    ctx.partial = outputs
    result: Any = outputs
    if spec.synthesizer:
        ctx.expect(1)
        synthesis = await ctx.run_task(
            "synthesize",
            TaskKind.SYNTHESIZE,
            {"input": input, "results": outputs},
            agent=spec.synthesizer,
            contract=contracts.synthesis(),
        )
        result = synthesis.output
    return StrategyOutcome(result=result, degraded=ctx.degraded, notes=ctx.notes)
