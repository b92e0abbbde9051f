"""The OpenTelemetry SDK behind :mod:`podium.telemetry`: imported only once tracing is configured.

One TracerProvider per process with this process's resource, the sampler of ``OTEL_TRACES_SAMPLER`` (the SDK's
default: parent-based, always on), a batch processor per configured exporter, and trace ids that a run's root
span takes from its uid (:func:`podium.telemetry.attributes.trace_id_for`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from podium import telemetry
from podium.telemetry.attributes import ERROR_TYPE, AttributeValue, error_type, trace_id_for
from podium.telemetry.config import TracingConfig, TracingConfigError

SCOPE = "podium"
KINDS = {
    "internal": SpanKind.INTERNAL,
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
PROPAGATOR = TraceContextTextMapPropagator()
# The trace id the next root span takes (0: a random one), set around the start of a run's span.
_RUN_TRACE: ContextVar[int] = ContextVar("podium_run_trace_id", default=0)
_global_set = False


class RunTraceIds(RandomIdGenerator):
    def generate_trace_id(self) -> int:
        return _RUN_TRACE.get() or super().generate_trace_id()


class LiveSpan(telemetry.Span):
    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, values: Mapping[str, AttributeValue]) -> None:
        self._span.set_attributes(values)

    def fail(self, error_type: str, message: str = "") -> None:
        self._span.set_attribute(ERROR_TYPE, error_type)
        self._span.set_status(Status(StatusCode.ERROR, message[:1000] or None))

    def event(self, name: str, values: Mapping[str, AttributeValue] | None = None) -> None:
        self._span.add_event(name, values)

    def end(self) -> None:
        self._span.end()

    @property
    def traceparent(self) -> str:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self._span))
        return carrier.get("traceparent", "")


def _exporter(name: str, config: TracingConfig) -> SpanExporter:
    if name == "console":
        # One JSON object per line (the SDK's default is indented over many), so a log collector can read it.
        return ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + os.linesep)
    if config.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError:
            raise TracingConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc, which the podium "
                "images do not include: use http/protobuf (port 4318 of a Collector) or install it"
            ) from None
        exporter: SpanExporter = GrpcExporter()
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables


def _resource(service_name: str, values: Mapping[str, str]) -> Resource:
    # Ours are defaults: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
    configured = dict(OTELResourceDetector().detect().attributes)
    return Resource.create({"service.name": service_name, **values, **configured})


class Tracing:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE)

    @classmethod
    def start(
        cls,
        service_name: str,
        resource: Mapping[str, str],
        config: TracingConfig | None,
        *,
        exporter: SpanExporter | None = None,
    ) -> Tracing:
        global _global_set
        provider = TracerProvider(resource=_resource(service_name, resource), id_generator=RunTraceIds())
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        for name in config.exporters if config is not None else ():
            processor = SimpleSpanProcessor if name == "console" else BatchSpanProcessor
            provider.add_span_processor(processor(_exporter(name, config)))  # type: ignore[arg-type]
        if not _global_set:
            # The process's global provider too, so that spans a user's python backend makes with the OpenTelemetry
            # API join the task's trace.
            trace.set_tracer_provider(provider)
            _global_set = True
        return cls(provider)

    def shutdown(self) -> None:
        self.provider.shutdown()

    def flush(self) -> None:
        self.provider.force_flush()

    @contextmanager
    def _scoped(self, span: trace.Span) -> Iterator[telemetry.Span]:
        live = LiveSpan(span)
        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=False):
            try:
                yield live
            except BaseException as exc:
                live.fail(error_type(exc), str(exc))
                raise

    def run_span(self, uid: str, name: str, values: Mapping[str, AttributeValue]) -> Any:
        token = _RUN_TRACE.set(trace_id_for(uid))
        try:
            # A root: a run belongs to no caller's trace, so that its id is the one its uid gives.
            span = self.tracer.start_span(name, context=otel_context.Context(), attributes=values)
        finally:
            _RUN_TRACE.reset(token)
        return self._scoped(span)

    def span(self, name: str, kind: str, values: Mapping[str, AttributeValue], traceparent: str | None = None) -> Any:
        parent = PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        return self._scoped(self.tracer.start_span(name, context=parent, kind=KINDS[kind], attributes=values))

    def unscoped(self, name: str, kind: str, values: Mapping[str, AttributeValue]) -> telemetry.Span:
        return LiveSpan(self.tracer.start_span(name, kind=KINDS[kind], attributes=values))

    def event(self, name: str, values: Mapping[str, AttributeValue] | None) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, values)

    def samples(self, trace_id: int) -> bool:
        """Whether a root span with this trace id would be recorded (the sampler's decision for a run)."""
        return self.provider.sampler.should_sample(None, trace_id, "run").decision.is_sampled()

    def current_traceparent(self) -> str:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
        return carrier.get("traceparent", "")
