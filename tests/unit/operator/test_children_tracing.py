"""Agent pods trace when the operator does: its OTEL_* variables reach their containers, an Agent may override
them, and turning tracing on or off rolls the pods (the Deployment's content changes)."""

from __future__ import annotations

import dataclasses
from typing import Any

from podium.operator.agents import children
from podium.operator.settings import Settings
from podium.telemetry.config import agent_env
from tests.support.agents import SETTINGS, make_agent

OPERATOR_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.5",
    "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer secret",
}


def env_of(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_agent_pods_get_the_operators_tracing_variables_without_its_headers() -> None:
    settings = dataclasses.replace(SETTINGS, extra_env=agent_env(OPERATOR_ENV))
    env = env_of(children.deployment(make_agent(), settings, 1))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.5"
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env


def test_an_agent_can_override_its_tracing_in_its_template() -> None:
    settings = dataclasses.replace(SETTINGS, extra_env=agent_env(OPERATOR_ENV))
    agent = make_agent(
        template={
            "env": [{"name": "OTEL_SDK_DISABLED", "value": "true"}, {"name": "OTEL_TRACES_SAMPLER_ARG", "value": "1"}]
        }
    )
    env = env_of(children.deployment(agent, settings, 1))
    assert env["OTEL_SDK_DISABLED"] == "true" and env["OTEL_TRACES_SAMPLER_ARG"] == "1"


def test_turning_tracing_on_changes_the_deployment_so_its_pods_roll() -> None:
    agent = make_agent()
    off = children.deployment(agent, SETTINGS, 1)
    on = children.deployment(agent, dataclasses.replace(SETTINGS, extra_env=agent_env(OPERATOR_ENV)), 1)
    assert not [k for k in env_of(off) if k.startswith("OTEL_")]
    assert (
        off["metadata"]["annotations"][children.HASH_ANNOTATION]
        != on["metadata"]["annotations"][children.HASH_ANNOTATION]
    )


def test_the_operator_reads_what_its_agents_get_from_its_environment(monkeypatch: Any) -> None:
    for name, value in OPERATOR_ENV.items():
        monkeypatch.setenv(name, value)
    assert dict(Settings.from_env().tracing_env)["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    monkeypatch.setenv("PODIUM_TRACING_AGENTS", "false")
    assert Settings.from_env().tracing_env == ()
