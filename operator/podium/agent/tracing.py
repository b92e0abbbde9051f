"""The agent's span for a task (docs/observability.md): a child of the engine's attempt, through the task's
``traceparent``, with what the work used and how it ended. Model and tool calls made during it are its children."""

from __future__ import annotations

from typing import TYPE_CHECKING

from podium import telemetry
from podium.telemetry import attributes

if TYPE_CHECKING:
    from podium.agent.config import RuntimeConfig
    from podium.agent.runtime import Outcome
    from podium.dataplane.messages import Task


def configure(config: RuntimeConfig) -> bool:
    """Tracing for this replica if the OTEL_* variables ask for it (the operator passes its own on)."""
    return telemetry.configure(
        "podium-agent",
        {
            "k8s.namespace.name": config.namespace,
            "k8s.pod.name": config.replica,
            "service.instance.id": config.replica,
            attributes.AGENT: config.agent,
        },
    )


def task_scope(task: Task, config: RuntimeConfig) -> telemetry.Scope:
    if not telemetry.enabled():
        return telemetry.NOOP_SCOPE
    return telemetry.task_span(
        task.traceparent,
        namespace=config.namespace,
        agent=config.agent,
        replica=config.replica,
        kind=str(task.kind),
        task_id=task.id,
        attempt=task.attempt,
        orchestration=task.orchestration,
        step=str(task.meta.get("step") or ""),
    )


def record(span: telemetry.Span, outcome: Outcome) -> None:
    if span is telemetry.NOOP:
        return
    result, usage = outcome.result, outcome.usage
    span.set(
        attributes.task_outcome(
            outcome.label, result.cost, result.tokens, usage.prompt_tokens, usage.completion_tokens, result.quality
        )
    )
    if not result.ok:
        span.fail(result.error_type or outcome.label, result.error or "")
