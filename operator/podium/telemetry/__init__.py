"""OpenTelemetry traces of runs (docs/observability.md): one trace per run, a span per step and per attempt, the
agent's span for the task (a child of the attempt's, across processes, through the task's ``traceparent``), and a
span per model call and tool call with the GenAI semantic conventions.

Off by default and free when off: until :func:`configure` finds tracing configured (``OTEL_*`` variables, see
:mod:`podium.telemetry.config`), every helper returns one shared no-op object and nothing imports OpenTelemetry.
The engine, the agent runtime and the operator all use this package, so it imports no other Podium package.

Instrumenting a call (the llm backend's tool calls, for instance)::

    with telemetry.tool_span("search", call_id=call.id, server=server_url) as span:
        result = await session.call_tool("search", arguments)
        if result.isError:
            span.fail("tool_error", "the tool reported an error")

A span's exception marks it failed with ``error.type`` the exception's class name, and the exception goes on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from podium.telemetry import attributes
from podium.telemetry.attributes import AttributeValue, trace_id_hex
from podium.telemetry.config import TracingConfigError

if TYPE_CHECKING:
    from podium.telemetry.sdk import Tracing

INSTALL_HINT = "pip install 'podium[tracing]'"


class Span:
    """What instrumented code may do with its span. This base does nothing: it is what callers get while tracing
    is off (or the span was not sampled), so instrumentation never needs to ask."""

    __slots__ = ()

    def set(self, values: Mapping[str, AttributeValue]) -> None:
        """Add attributes (build them with :mod:`podium.telemetry.attributes`)."""

    def fail(self, error_type: str, message: str = "") -> None:
        """Mark the span failed: status ERROR with ``message``, ``error.type`` = ``error_type``."""

    def event(self, name: str, values: Mapping[str, AttributeValue] | None = None) -> None:
        """Something that happened during the span (a throttled request, a fallback)."""

    def end(self) -> None:
        """End a span started with :func:`start_attempt` (scoped spans end with their ``with`` block)."""

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` that makes a span in another process this span's child ("" when off)."""
        return ""


Scope = AbstractContextManager[Span]


class _NoopScope:
    __slots__ = ()

    def __enter__(self) -> Span:
        return NOOP

    def __exit__(self, *exc: object) -> None:
        return None


NOOP = Span()
NOOP_SCOPE = _NoopScope()
_tracing: Tracing | None = None


def enabled() -> bool:
    return _tracing is not None


def configure(
    service_name: str,
    resource: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    exporter: Any = None,
) -> bool:
    """Start tracing if the environment asks for it (or ``exporter``, an SDK SpanExporter, is given: tests); True if
    it is on. ``service_name`` and ``resource`` describe this process; ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` override them. Raises :class:`TracingConfigError` for a setting Podium cannot
    honour, including tracing asked for without the SDK installed."""
    global _tracing
    from podium.telemetry import config

    settings = config.from_env(os.environ if environ is None else environ)
    if settings is None and exporter is None:
        return False
    try:
        from podium.telemetry.sdk import Tracing
    except ImportError as exc:
        raise TracingConfigError(
            f"tracing is configured (OTEL_* variables) but the OpenTelemetry SDK is missing ({exc.name} not "
            f"installed): {INSTALL_HINT} (the podium images include it)"
        ) from None
    shutdown()
    _tracing = Tracing.start(service_name, dict(resource or {}), settings, exporter=exporter)
    return True


def shutdown() -> None:
    """Export what is buffered and stop tracing (at process exit; the SDK also flushes at exit on its own)."""
    global _tracing
    current, _tracing = _tracing, None
    if current is not None:
        current.shutdown()


def flush() -> None:
    if _tracing is not None:
        _tracing.flush()


# ---------------------------------------------------------------------------------------------------- the spans
def run_span(*, uid: str, namespace: str, name: str, strategy: str) -> Scope:
    """A run's root span (``run <strategy>``), in the trace whose id derives from ``uid``
    (:func:`podium.telemetry.attributes.trace_id_for`). Use as ``with run_span(...) as span``."""
    if _tracing is None:
        return NOOP_SCOPE
    return _tracing.run_span(
        uid, attributes.run_name(strategy), attributes.run_attributes(uid, namespace, name, strategy)
    )


def step_span(*, step: str, kind: str) -> Scope:
    """One step of a run (``step <kind>``): its attempts, retries and fallbacks."""
    if _tracing is None:
        return NOOP_SCOPE
    return _tracing.span(attributes.step_name(kind), "internal", attributes.step_attributes(step, kind))


def start_attempt(*, agent: str, step: str, kind: str, attempt: int, task_id: str) -> Span:
    """One attempt (``invoke_agent <agent>``), from dispatch to its result: not made current, since the engine
    waits on many at once; its :attr:`Span.traceparent` goes into the task; :meth:`Span.end` ends it."""
    if _tracing is None:
        return NOOP
    return _tracing.unscoped(
        attributes.attempt_name(agent), "client", attributes.attempt_attributes(agent, step, kind, attempt, task_id)
    )


def task_span(
    traceparent: str,
    *,
    namespace: str,
    agent: str,
    replica: str,
    kind: str,
    task_id: str,
    attempt: int,
    orchestration: str = "",
    step: str = "",
) -> Scope:
    """The agent's work on one task (``task <kind>``): a child of the attempt that sent it when ``traceparent``
    (the task's) is valid, else a trace of its own."""
    if _tracing is None:
        return NOOP_SCOPE
    values = attributes.task_attributes(
        namespace=namespace,
        agent=agent,
        replica=replica,
        kind=kind,
        task_id=task_id,
        attempt=attempt,
        orchestration=orchestration,
        step=step,
    )
    return _tracing.span(attributes.task_name(kind), "consumer", values, traceparent=traceparent)


def model_span(
    *,
    model: str,
    base_url: str,
    operation: str = attributes.CHAT,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    frequency_penalty: float | None = None,
    output_type: str | None = None,
) -> Scope:
    """One call to a model (``chat <model>``, kind CLIENT, GenAI inference attributes); record the answer's usage
    with ``span.set(attributes.model_response(...))``."""
    if _tracing is None:
        return NOOP_SCOPE
    values = attributes.model_request(
        model=model,
        base_url=base_url,
        operation=operation,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        frequency_penalty=frequency_penalty,
        output_type=output_type,
    )
    return _tracing.span(attributes.model_name(model, operation), "client", values)


def tool_span(
    name: str,
    *,
    call_id: str | None = None,
    description: str | None = None,
    tool_type: str | None = "extension",
    server: str | None = None,
) -> Scope:
    """One tool call (``execute_tool <name>``, GenAI execute-tool attributes). ``server``: where the tool runs (an
    MCP server's URL or command), recorded as ``podium.tool.server``. Arguments and results are not recorded:
    they may hold anything a user would not put in a trace."""
    if _tracing is None:
        return NOOP_SCOPE
    values = attributes.tool_attributes(
        name, call_id=call_id, description=description, tool_type=tool_type, server=server
    )
    return _tracing.span(attributes.tool_name(name), "internal", values)


def event(name: str, values: Mapping[str, AttributeValue] | None = None) -> None:
    """An event on the current span, if any (a throttled model request, a fallback to a simpler request)."""
    if _tracing is not None:
        _tracing.event(name, values)


def run_trace_id(uid: str) -> str | None:
    """The trace id of the run with this uid, as tracing backends show it; None while tracing is off or when the
    sampler leaves this run out (the decision follows from the id, so it is known before the run starts)."""
    if _tracing is None or not _tracing.samples(attributes.trace_id_for(uid)):
        return None
    return trace_id_hex(uid)


def traceparent() -> str:
    """The current span's W3C traceparent ("" when off or outside any span)."""
    if _tracing is None:
        return ""
    return _tracing.current_traceparent()


__all__ = [
    "NOOP",
    "Span",
    "TracingConfigError",
    "attributes",
    "configure",
    "enabled",
    "event",
    "flush",
    "model_span",
    "run_span",
    "run_trace_id",
    "shutdown",
    "start_attempt",
    "step_span",
    "task_span",
    "tool_span",
    "trace_id_hex",
    "traceparent",
]
