"""The chart's tracing values (docs/observability.md): off by default; on, the operator gets the OpenTelemetry
variables it passes on to agent pods, and agents may reach the receiver through the NetworkPolicies."""

from __future__ import annotations

import pytest

from tests.support.chart import CHART, KUBE, NAMESPACE, env_of, find, helm, helm_is_built, one, render
from tests.support.netpol import allowed, outside, pod

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)

ON = ("tracing.enabled=true", "tracing.otlpEndpoint=http://otel-collector.observability:4318")
AGENT = pod("team-a", {"app.kubernetes.io/name": "podium-agent", "app.kubernetes.io/managed-by": "podium-operator",
                       "podium.dev/agent": "writer"})  # fmt: skip
COLLECTOR = pod("observability", {"app": "otel-collector"}, ip="10.0.9.9")


def operator_env(*sets: str) -> dict[str, object]:
    deployment = one(render(*sets), "Deployment", "podium")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return env_of(container)


def test_off_by_default() -> None:
    assert not [name for name in operator_env() if name.startswith(("OTEL_", "PODIUM_TRACING"))]


def test_on_the_operator_exports_to_the_endpoint_with_the_sampler_asked_for() -> None:
    env = operator_env(*ON, "tracing.samplerArg=0.1", "tracing.resourceAttributes=deployment.environment=prod")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.1")
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=prod"
    assert "PODIUM_TRACING_AGENTS" not in env  # agents trace too, by default


def test_agents_can_be_left_untraced_and_headers_come_from_a_secret() -> None:
    env = operator_env(
        *ON,
        "tracing.agents=false",
        "tracing.extraEnv[0].name=OTEL_EXPORTER_OTLP_HEADERS",
        "tracing.extraEnv[0].valueFrom.secretKeyRef.name=otlp-auth",
        "tracing.extraEnv[0].valueFrom.secretKeyRef.key=headers",
    )
    assert env["PODIUM_TRACING_AGENTS"] == "false"
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == {"secretKeyRef": {"name": "otlp-auth", "key": "headers"}}


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("tracing.enabled=true",), "tracing.enabled needs tracing.otlpEndpoint"),
        ((*ON, "tracing.samplerArg=2"), "at '/tracing/samplerArg': maximum: got 2, want 1"),
        ((*ON, "tracing.sampler=sometimes"), "at '/tracing/sampler': value must be one of"),
        (("tracing.otlpEndpoint=collector:4318",), "at '/tracing/otlpEndpoint'"),
        (("tracing.enabeld=true",), "at '/tracing': additional properties 'enabeld' not allowed"),
    ],
)
def test_a_bad_setting_fails_the_install_naming_it(sets: tuple[str, ...], complaint: str) -> None:
    args = ["template", "podium", str(CHART), "--namespace", NAMESPACE, *KUBE]
    for s in sets:
        args += ["--set", s]
    out = helm(*args)
    assert out.returncode != 0 and complaint in out.stderr, out.stderr


def test_agents_reach_the_receiver_only_where_tracing_network_policy_says() -> None:
    base = ("networkPolicy.enabled=true", "watchNamespaces={team-a}", *ON)
    closed = find(render(*base), "NetworkPolicy")
    assert not allowed(closed, AGENT, COLLECTOR, 4318)
    opened = find(
        render(
            *base,
            "tracing.networkPolicy.to[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=observability",
        ),
        "NetworkPolicy",
    )
    assert allowed(opened, AGENT, COLLECTOR, 4318)
    assert not allowed(opened, AGENT, COLLECTOR, 4317)
    assert not allowed(opened, AGENT, outside("203.0.113.7"), 4318)
