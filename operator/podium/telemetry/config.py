"""Whether a process traces, read from the standard OpenTelemetry variables, and what the operator hands its agents.

Off unless configured: tracing starts when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` names an exporter. Unlike the SDK's own default
(``otlp`` to localhost), nothing is exported by a process that was not told where to. Everything else (sampler,
batching, timeouts, resource attributes) is the SDK's, read from its own variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EXPORTERS = ("otlp", "console")
PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_PROTOCOL = "http/protobuf"  # the exporter the `tracing` extra installs

# The variables an agent pod gets from the operator's environment (docs/observability.md), so that one setting in
# the chart traces both sides. Never headers (they usually carry credentials, and would be written into every
# Agent's Deployment) nor certificate paths (files of the operator's pod): set those on Agents with
# spec.template.env.
AGENT_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
)
# Set to "false" on the operator: its agents do not trace even when it does.
AGENTS_SWITCH = "PODIUM_TRACING_AGENTS"


class TracingConfigError(ValueError):
    """The OTEL_* variables ask for something Podium cannot do; the message names the variable."""


@dataclass(frozen=True)
class TracingConfig:
    exporters: tuple[str, ...]  # of EXPORTERS
    protocol: str  # of PROTOCOLS, for otlp


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def from_env(environ: Mapping[str, str]) -> TracingConfig | None:
    """The tracing this environment asks for, or None: tracing is off."""
    if _true(environ.get("OTEL_SDK_DISABLED")):
        return None
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not named:
        if not endpoint:
            return None
        named = "otlp"
    exporters = tuple(dict.fromkeys(e.strip().lower() for e in named.split(",") if e.strip()))
    if "none" in exporters:
        if len(exporters) > 1:
            raise TracingConfigError(f"OTEL_TRACES_EXPORTER={named!r}: 'none' cannot be combined with other exporters")
        return None
    unknown = [e for e in exporters if e not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={named!r}: unknown exporter {unknown[0]!r}; Podium exports with "
            f"{', '.join(EXPORTERS)} or none (an OpenTelemetry Collector converts OTLP to anything else)"
        )
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip().lower() or DEFAULT_PROTOCOL
    if "otlp" in exporters and protocol not in PROTOCOLS:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Podium's OTLP exporter speaks {' or '.join(PROTOCOLS)}"
        )
    return TracingConfig(exporters, protocol)


def agent_env(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The tracing variables the operator passes to every agent pod: its own, when it traces and
    ``PODIUM_TRACING_AGENTS`` is not ``false``; nothing otherwise (an invalid setting is the operator's error)."""
    if environ.get(AGENTS_SWITCH, "").strip().lower() == "false":
        return ()
    try:
        if from_env(environ) is None:
            return ()
    except TracingConfigError:
        return ()
    return tuple((name, environ[name]) for name in AGENT_VARIABLES if environ.get(name))
