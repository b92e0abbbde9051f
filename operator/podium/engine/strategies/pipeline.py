"""pipeline: ordered stages, each output validated; retry a stage, then its fallback agent, then fail."""

from __future__ import annotations

from typing import Any

from podium.api.orchestration import PipelineSpec, Stage, Target
from podium.dataplane.messages import TaskKind
from podium.engine import contracts
from podium.engine.context import RunContext
from podium.engine.strategies import StrategyFailed, StrategyOutcome


def stage_input(previous: Any, extra: Any) -> Any:
    """What a stage receives: the previous output, with the stage's own ``input`` merged over it."""
    if extra is None:
        return previous
    if isinstance(previous, dict) and isinstance(extra, dict):
        return {**previous, **extra}
    return {"previous": previous, "stage": extra}


def stage_contract(stage: Stage) -> contracts.Contract | None:
    """The stage's ``validate.jsonSchema`` as the output contract its tasks carry."""
    if stage.validate_ is None:
        return None
    try:
        return contracts.stage(stage.validate_.json_schema)
    except contracts.ContractError as exc:
        raise StrategyFailed(f"stage {stage.name!r}: validate.jsonSchema is {exc}") from exc


def stage_step(name: str) -> str:
    """A stage's step name (status.tasks, the journal; what approval and blackboard settings attach to)."""
    return f"stage-{name}"


def _target(stage: Stage) -> Target:
    return Target(agent=stage.agent, role=stage.role, capability=stage.capability)


async def run(ctx: RunContext, spec: PipelineSpec, input: Any) -> StrategyOutcome:
    checks = {s.name: stage_contract(s) for s in spec.stages}
    ctx.expect(len(spec.stages))
    current = input
    for stage in spec.stages:
        result = await ctx.try_task(
            stage_step(stage.name),
            TaskKind.EXECUTE,
            stage_input(current, stage.input),
            target=_target(stage),
            retries=stage.retries,
            fallback=[stage.fallback] if stage.fallback else [],
            contract=checks[stage.name],
        )
        if result is None:
            # Only non-critical stages get here (try_task raises for critical ones): pass the data through.
            ctx.notes.append(f"stage {stage.name!r} skipped; its input was passed on unchanged")
            continue
        current = result.output
        ctx.partial = current
    return StrategyOutcome(result=current, degraded=ctx.degraded, notes=ctx.notes)
