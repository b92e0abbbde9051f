"""pipeline: ordered stages, each output validated; retry a stage, then its fallback agent, then fail."""

from __future__ import annotations

from typing import Any

import jsonschema

from podium.api.orchestration import PipelineSpec, Stage, Target
from podium.dataplane.messages import TaskKind
from podium.engine.context import RunContext, Validator
from podium.engine.strategies import StrategyFailed, StrategyOutcome


def stage_input(previous: Any, extra: Any) -> Any:
    """What a stage receives: the previous output, with the stage's own ``input`` merged over it."""
    if extra is None:
        return previous
    if isinstance(previous, dict) and isinstance(extra, dict):
        return {**previous, **extra}
    return {"previous": previous, "stage": extra}


def schema_validator(schema: dict[str, Any], stage: str) -> Validator:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise StrategyFailed(f"stage {stage!r}: validate.jsonSchema is not a valid JSON Schema: {exc.message}") from exc
    validator = jsonschema.Draft202012Validator(schema)

    def check(output: Any) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(output))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"{where}: {error.message}"

    return check


def _target(stage: Stage) -> Target:
    return Target(agent=stage.agent, role=stage.role, capability=stage.capability)


async def run(ctx: RunContext, spec: PipelineSpec, input: Any) -> StrategyOutcome:
    validators = {s.name: schema_validator(s.validate_.json_schema, s.name) for s in spec.stages if s.validate_}
    ctx.expect(len(spec.stages))
    current = input
    for stage in spec.stages:
        result = await ctx.try_task(
            f"stage-{stage.name}",
            TaskKind.EXECUTE,
            stage_input(current, stage.input),
            target=_target(stage),
            retries=stage.retries,
            fallback=[stage.fallback] if stage.fallback else [],
            validate=validators.get(stage.name),
        )
        if result is None:
            # Only non-critical stages get here (try_task raises for critical ones): pass the data through.
            ctx.notes.append(f"stage {stage.name!r} skipped; its input was passed on unchanged")
            continue
        current = result.output
        ctx.partial = current
    return StrategyOutcome(result=current, degraded=ctx.degraded, notes=ctx.notes)
