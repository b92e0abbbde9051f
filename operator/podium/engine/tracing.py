"""The engine's spans (docs/observability.md): a run, each of its steps, each attempt of a step.

Names and attributes are :mod:`podium.telemetry`'s; this module only knows which engine values go where, so that
the run logic gains one line per instrumentation point. With tracing off each hook is one check of
:func:`podium.telemetry.enabled`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from podium import telemetry
from podium.telemetry import attributes

if TYPE_CHECKING:
    from podium.dataplane.messages import Result, Task
    from podium.engine.context import RunContext

T = TypeVar("T")
P = ParamSpec("P")
SUCCEEDED = "Succeeded"


def run(execute: Callable[[RunContext, Any, Any], Awaitable[T]]) -> Callable[[RunContext, Any, Any], Awaitable[T]]:
    """Wraps ``runner._execute(ctx, spec, block)``: the run's root span, with its outcome."""

    @functools.wraps(execute)
    async def traced(ctx: RunContext, spec: Any, block: Any) -> T:
        if not telemetry.enabled():
            return await execute(ctx, spec, block)
        scope = telemetry.run_span(uid=ctx.uid, namespace=ctx.namespace, name=ctx.name, strategy=str(spec.strategy))
        with scope as span:
            try:
                outcome: Any = await execute(ctx, spec, block)
            finally:
                ctx.attempts.abandon("the run ended before this attempt's result")
            span.set(
                attributes.run_outcome(outcome.phase, outcome.reason, outcome.cost, outcome.tokens, outcome.degraded)
            )
            if outcome.phase != SUCCEEDED:
                span.fail(outcome.reason, outcome.message)
            return outcome

    return traced


def step(
    run_task: Callable[Concatenate[RunContext, str, str, Any, P], Awaitable[Result]],
) -> Callable[Concatenate[RunContext, str, str, Any, P], Awaitable[Result]]:
    """Wraps ``RunContext.run_task``: a span per step, over its attempts, retries and fallbacks. A step that fails
    on every agent ends with error.type ``TaskFailed``."""

    @functools.wraps(run_task)
    async def traced(ctx: RunContext, step: str, kind: str, input: Any, *args: P.args, **how: P.kwargs) -> Result:
        if not telemetry.enabled():
            return await run_task(ctx, step, kind, input, *args, **how)
        with telemetry.step_span(step=step, kind=str(kind)) as span:
            result = await run_task(ctx, step, kind, input, *args, **how)
            record = ctx.records.get(step)
            attempts = record.attempts if record is not None else result.attempt
            span.set(attributes.step_outcome(result.agent, attempts, result.cost, result.tokens))
            return result

    return traced


class Attempts:
    """The open attempt spans of one run, by task id: an attempt spans dispatch to result, and the engine waits on
    many at once, so they are started and ended explicitly rather than made current."""

    def __init__(self) -> None:
        self.open: dict[str, telemetry.Span] = {}

    def start(self, step: str, task: Task) -> None:
        """Before dispatch: the span starts and its context goes into the task, for the agent's span."""
        if not telemetry.enabled():
            return
        span = telemetry.start_attempt(
            agent=task.agent, step=step, kind=str(task.kind), attempt=task.attempt, task_id=task.id
        )
        task.traceparent = span.traceparent
        self.open[task.id] = span

    def end(self, task: Task, result: Result | None, error: str) -> None:
        """With the attempt's outcome: ``error`` is why it does not count ("" when it succeeded)."""
        span = self.open.pop(task.id, None)
        if span is None:
            return
        if result is not None:
            span.set(attributes.attempt_outcome(result.cost, result.tokens, result.quality, result.replica))
        if error:
            reason = "timeout" if result is None else (result.error_type or ("error" if not result.ok else "rejected"))
            span.fail(reason, error)
        span.end()

    def abandon(self, why: str) -> None:
        """End what is still open (a run cancelled or out of time while attempts were in flight)."""
        for span in self.open.values():
            span.fail("abandoned", why)
            span.end()
        self.open.clear()
