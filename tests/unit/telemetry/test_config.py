"""Tracing is off unless the standard OpenTelemetry variables configure it; a setting Podium cannot honour is a
clear error; the operator hands agents its tracing variables, never its headers."""

from __future__ import annotations

import pytest

from podium.telemetry.config import TracingConfig, TracingConfigError, agent_env, from_env


def test_nothing_set_means_no_tracing() -> None:
    assert from_env({}) is None
    # The SDK alone would default to OTLP on localhost; Podium exports nothing it was not told to.
    assert from_env({"OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "x"}) is None


def test_an_endpoint_turns_otlp_on() -> None:
    assert from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == TracingConfig(
        ("otlp",), "http/protobuf"
    )
    assert from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == TracingConfig(
        ("otlp",), "http/protobuf"
    )


def test_exporters_are_named_by_otel_traces_exporter() -> None:
    assert from_env({"OTEL_TRACES_EXPORTER": "console"}) == TracingConfig(("console",), "http/protobuf")
    both = from_env({"OTEL_TRACES_EXPORTER": "otlp, console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert both == TracingConfig(("otlp", "console"), "grpc")


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
        {"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_tracing_can_be_switched_off_explicitly(env: dict[str, str]) -> None:
    assert from_env(env) is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter 'zipkin'"),
        ({"OTEL_TRACES_EXPORTER": "none,otlp"}, "'none' cannot be combined"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
    ],
)
def test_a_setting_podium_cannot_honour_says_which_and_why(env: dict[str, str], named: str) -> None:
    with pytest.raises(TracingConfigError, match=named):
        from_env(env)


def test_agents_get_the_operators_tracing_variables_but_never_its_headers() -> None:
    operator = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer secret",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/otel/ca.pem",
        "OTEL_SERVICE_NAME": "podium-operator",
        "PODIUM_REDIS_URL": "redis://r:6379/0",
    }
    assert agent_env(operator) == (
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.observability:4318"),
    )


def test_agents_get_nothing_when_the_operator_does_not_trace_or_is_told_not_to_pass_it_on() -> None:
    assert agent_env({"OTEL_TRACES_SAMPLER": "always_on"}) == ()
    assert agent_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == ()
    assert agent_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "PODIUM_TRACING_AGENTS": "false"}) == ()
    assert agent_env({"OTEL_TRACES_EXPORTER": "zipkin"}) == ()  # the operator itself refuses to start with it
