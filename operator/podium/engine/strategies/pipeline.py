"""pipeline: ordered stages, each output validated; retry a stage, then its fallback agent, then fail (a stage
with ``onFailure: skip`` is skipped instead, its input passed on, the run degraded)."""

from __future__ import annotations

from typing import Any

from podium.api.orchestration import PipelineSpec, Stage
from podium.dataplane.messages import TaskKind
from podium.engine import contracts
from podium.engine.context import Next, RunContext, TaskFailed
from podium.engine.degradation import Verdict, assess
from podium.engine.directory import AgentDirectory
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


def _fallback(stage: Stage) -> list[str]:
    return [stage.fallback] if stage.fallback else []


def needs(spec: PipelineSpec, directory: AgentDirectory) -> list[tuple[str, list[str]]]:
    """Each stage's agents and fallback, checked before the first stage runs."""
    return [(f"stage {s.name!r}", directory.names(s) + _fallback(s)) for s in spec.stages]


async def run(ctx: RunContext, spec: PipelineSpec, input: Any) -> StrategyOutcome:
    checks = {s.name: stage_contract(s) for s in spec.stages}
    # A stage is its own target (agent, role or capability, and the weights that rank its agents).
    nexts = [Next(stage_step(s.name), s, fallback=_fallback(s)) for s in spec.stages]
    ctx.expect(len(spec.stages))
    current = input
    for i, stage in enumerate(spec.stages):
        this = nexts[i]
        then = nexts[i + 1] if i + 1 < len(nexts) else None
        try:
            result = await ctx.run_task(
                this.step,
                TaskKind.EXECUTE,
                stage_input(current, stage.input),
                target=this.target,
                retries=stage.retries,
                fallback=this.fallback,
                contract=checks[stage.name],
                then=then,
            )
        except TaskFailed as exc:
            if stage.on_failure == "skip" and assess(exc.priorities) is Verdict.DEGRADE:
                ctx.degrade(f"stage {stage.name!r} skipped (onFailure: skip), its input passed on: {exc.last_error}")
                continue
            # The pattern throws: a stage that cannot produce valid output ends the run, saying which and why.
            raise exc.about(f"stage {stage.name!r}") from None
        current = result.output
        ctx.partial = current
    return StrategyOutcome(result=current, degraded=ctx.degraded, notes=ctx.notes)
