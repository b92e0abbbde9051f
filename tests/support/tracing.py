"""Reading traces in tests: spans recorded in memory, printed by the console exporter, or written by a Collector's
file exporter (OTLP JSON), all as :class:`SpanRow`, and the checks a trace's shape needs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from podium import telemetry

OTLP_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
OTLP_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class SpanRow:
    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str | None
    kind: str  # INTERNAL | CLIENT | CONSUMER | ...
    status: str  # UNSET | OK | ERROR
    attributes: dict[str, Any] = field(hash=False)
    service: str = ""
    events: tuple[str, ...] = ()
    resource: dict[str, Any] = field(default_factory=dict, hash=False)

    def __getitem__(self, key: str) -> Any:
        return self.attributes[key]


@contextmanager
def recording(service: str = "podium-test") -> Iterator[Any]:
    """Tracing on for the block, into an in-memory exporter (yielded); off again afterwards."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    telemetry.configure(service, environ={}, exporter=exporter)
    try:
        yield exporter
    finally:
        telemetry.shutdown()


def from_sdk(spans: Iterable[Any]) -> list[SpanRow]:
    rows = []
    for span in spans:
        rows.append(
            SpanRow(
                name=span.name,
                trace_id=f"{span.context.trace_id:032x}",
                span_id=f"{span.context.span_id:016x}",
                parent_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
                kind=span.kind.name,
                status=span.status.status_code.name,
                attributes=dict(span.attributes or {}),
                service=str(span.resource.attributes.get("service.name", "")),
                events=tuple(e.name for e in span.events),
                resource=dict(span.resource.attributes),
            )
        )
    return rows


def from_console(text: str) -> list[SpanRow]:
    """Spans a process printed with ``OTEL_TRACES_EXPORTER=console`` (one JSON object a line), among its other
    output."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict) or "context" not in data:
            continue
        rows.append(
            SpanRow(
                name=data["name"],
                trace_id=data["context"]["trace_id"].removeprefix("0x"),
                span_id=data["context"]["span_id"].removeprefix("0x"),
                parent_id=data["parent_id"].removeprefix("0x") if data.get("parent_id") else None,
                kind=data["kind"].removeprefix("SpanKind."),
                status=data["status"]["status_code"],
                attributes={
                    k: tuple(v) if isinstance(v, list) else v for k, v in (data.get("attributes") or {}).items()
                },
                service=str(((data.get("resource") or {}).get("attributes") or {}).get("service.name", "")),
                events=tuple(e["name"] for e in data.get("events") or []),
                resource=dict((data.get("resource") or {}).get("attributes") or {}),
            )
        )
    return rows


def _otlp_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # int64 travels as a string in OTLP JSON
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return tuple(_otlp_value(v) for v in value["arrayValue"].get("values", []))
    return None


def _otlp_attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: _otlp_value(item.get("value") or {}) for item in items or []}


def from_otlp_json(text: str) -> list[SpanRow]:
    """Spans of a Collector's file exporter: one ExportTraceServiceRequest as OTLP JSON a line. A last line without
    its newline is still being written by the Collector: read on the next look."""
    rows = []
    for line in text.split("\n")[:-1]:
        if not line.strip():
            continue
        for resource_spans in json.loads(line).get("resourceSpans", []):
            resource = _otlp_attributes((resource_spans.get("resource") or {}).get("attributes"))
            for scope in resource_spans.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    status = span.get("status") or {}
                    rows.append(
                        SpanRow(
                            name=span["name"],
                            trace_id=span["traceId"],
                            span_id=span["spanId"],
                            parent_id=span.get("parentSpanId") or None,
                            kind=OTLP_KINDS[int(span.get("kind", 0))],
                            status=OTLP_STATUS[int(status.get("code", 0))],
                            attributes=_otlp_attributes(span.get("attributes")),
                            service=str(resource.get("service.name", "")),
                            events=tuple(e["name"] for e in span.get("events") or []),
                            resource=resource,
                        )
                    )
    return rows


def named(rows: Iterable[SpanRow], prefix: str) -> list[SpanRow]:
    return [r for r in rows if r.name == prefix or r.name.startswith(prefix + " ")]


def one(rows: Iterable[SpanRow], prefix: str) -> SpanRow:
    found = named(rows, prefix)
    assert len(found) == 1, f"expected one {prefix!r} span, got {[r.name for r in found]}"
    return found[0]


def children(rows: Iterable[SpanRow], parent: SpanRow) -> list[SpanRow]:
    return [r for r in rows if r.parent_id == parent.span_id and r.trace_id == parent.trace_id]
