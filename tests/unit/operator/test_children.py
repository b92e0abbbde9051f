"""The manifests an Agent turns into: what a user would see with `kubectl get -o yaml`."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from podium.agent.backends.base import build_backend
from podium.agent.backends.llm import LLMRunner
from podium.agent.config import parse_spec
from podium.api.agent import Agent, AgentSpec
from podium.operator.agents import children
from podium.operator.agents.children import TemplateError
from tests.support.agents import SETTINGS, make_agent


def env_of(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_every_child_is_owned_by_the_agent() -> None:
    agent = make_agent()
    for manifest in (
        children.deployment(agent, SETTINGS, 2),
        children.service(agent),
        children.config_map(agent),
        children.secret(agent, "pw"),
    ):
        (ref,) = manifest["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "podium.dev/v1alpha1",
            "kind": "Agent",
            "name": "rev",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert manifest["metadata"]["namespace"] == "team-a"
        assert manifest["metadata"]["labels"]["podium.dev/agent"] == "rev"


def test_deployment_runs_podium_agent_hardened_with_probes() -> None:
    dep = children.deployment(make_agent(), SETTINGS, 2)
    pod = dep["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["selector"]["matchLabels"] == {"podium.dev/agent": "rev"}
    assert pod["metadata"]["labels"]["podium.dev/agent"] == "rev"
    assert container["command"] == ["podium", "agent"]
    assert container["image"] == SETTINGS.agent_image
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = env_of(dep)
    assert env["PODIUM_AGENT_NAME"]["value"] == "rev"
    assert env["PODIUM_NAMESPACE"]["value"] == "team-a"
    assert env["PODIUM_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["PODIUM_HTTP_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["PODIUM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "rev-redis", "key": "password"}
    assert env["PODIUM_CONFIG"]["value"] == "/etc/podium/agent.json"


def test_config_map_holds_the_fields_the_runtime_reads() -> None:
    cm = children.config_map(make_agent(concurrency=7, maintenance=True))
    config = json.loads(cm["data"]["agent.json"])
    assert config["role"] == "reviewer"
    assert config["concurrency"] == 7
    assert config["maintenance"] is True
    assert config["backend"] == {"command": {"args": ["cat"], "inputMode": "stdin"}}
    assert "replicas" not in config and "template" not in config


def test_every_spec_field_is_either_in_the_config_or_the_operators_alone() -> None:
    """A field the runtime needs but the config leaves out is missing in every pod, with no error anywhere (as
    spec.blackboard was: an llm agent's model was never asked to write the keys its Agent lists)."""
    fields = {field.alias or name for name, field in AgentSpec.model_fields.items()}
    assert set(children.CONFIG_FIELDS) | set(children.OPERATOR_FIELDS) == fields
    assert not set(children.CONFIG_FIELDS) & set(children.OPERATOR_FIELDS)


def test_an_llm_agents_pods_ask_its_model_to_write_the_keys_its_agent_lists() -> None:
    llm = {"llm": {"baseURL": "http://model.svc:8080/v1", "model": "m"}}
    agent = make_agent(backend=llm, blackboard={"read": ["fact"], "write": ["fact", "notes"]})
    # What a pod reads: the ConfigMap's file, parsed and turned into a backend as `podium agent` does.
    spec = parse_spec(children.config_map(agent)["data"]["agent.json"])
    backend = build_backend(spec)
    assert isinstance(backend, LLMRunner) and backend.writes == ("fact", "notes")


def test_secret_names_the_agents_own_redis_user() -> None:
    sec = children.secret(make_agent(), "s3cret")
    decoded = {k: base64.b64decode(v).decode() for k, v in sec["data"].items()}
    assert decoded == {"username": "podium-agent:team-a/rev", "password": "s3cret"}


def test_hash_is_stable_and_moves_with_content_but_not_with_replicas() -> None:
    agent = make_agent()
    h = children.HASH_ANNOTATION
    first = children.deployment(agent, SETTINGS, 2)["metadata"]["annotations"][h]
    assert children.deployment(agent, SETTINGS, 2)["metadata"]["annotations"][h] == first
    assert children.deployment(agent, SETTINGS, 5)["metadata"]["annotations"][h] == first
    other = children.deployment(make_agent(concurrency=9), SETTINGS, 2)["metadata"]["annotations"][h]
    assert other != first


def test_maintenance_does_not_roll_the_pods_but_a_backend_change_does() -> None:
    key = children.CONFIG_HASH_ANNOTATION

    def pod_hash(agent: Agent) -> str:
        return str(children.deployment(agent, SETTINGS, 1)["spec"]["template"]["metadata"]["annotations"][key])

    base = pod_hash(make_agent())
    assert pod_hash(make_agent(maintenance=True)) == base
    assert pod_hash(make_agent(backend={"command": {"args": ["tac"]}})) != base


def test_template_overrides_are_merged() -> None:
    agent = make_agent(
        template={
            "image": "my/agent:2",
            "env": [{"name": "EXTRA", "value": "1"}, {"name": "PODIUM_HTTP_PORT", "value": "8080"}],
            "nodeSelector": {"gpu": "yes"},
            "resources": {"limits": {"memory": "1Gi"}},
            "labels": {"team": "x", "podium.dev/agent": "hijack"},
        }
    )
    dep = children.deployment(agent, SETTINGS, 1)
    pod = dep["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "my/agent:2"
    assert container["resources"] == {"limits": {"memory": "1Gi"}}
    assert pod["spec"]["nodeSelector"] == {"gpu": "yes"}
    assert env_of(dep)["EXTRA"]["value"] == "1"
    assert pod["metadata"]["labels"]["team"] == "x"
    assert pod["metadata"]["labels"]["podium.dev/agent"] == "rev"  # the selector keeps matching


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"hostNetwork": True}, "unknown field(s) hostNetwork"),
        ({"image": ""}, "spec.template.image: must be a non-empty"),
        ({"env": [{"name": "PODIUM_REDIS_PASSWORD", "value": "x"}]}, "set by the operator"),
        ({"env": "A=1"}, "must be a list"),
    ],
)
def test_bad_template_is_refused_with_a_message(template: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        children.deployment(make_agent(template=template), SETTINGS, 1)


def test_long_names_stay_valid_labels_and_services() -> None:
    name = "a" * 100
    assert len(children.short_value(name)) == 63
    assert children.short_value(name) != children.short_value("a" * 99 + "b")
    assert len(children.names(name)["service"]) <= 63
    assert children.names("9lives")["service"] == "a-9lives"


@pytest.mark.parametrize(
    ("spec", "last", "current", "expected"),
    [
        (3, None, None, 3),  # first apply
        (3, 3, 3, 3),  # steady
        (5, 3, 3, 5),  # kubectl scale agent / HPA on the Agent: follow spec
        (3, 3, 7, 7),  # someone scaled the Deployment itself: do not fight it
        (4, 3, 7, 4),  # ...until the Agent's replicas change again
    ],
)
def test_desired_replicas_never_fights_a_scaler(
    spec: int, last: int | None, current: int | None, expected: int
) -> None:
    assert children.desired_replicas(spec, last, current) == expected


def test_llm_api_key_comes_from_the_secret_the_agent_names() -> None:
    llm = {"model": "gpt-4o-mini", "baseURL": "https://api.openai.com/v1"}
    keyed = make_agent(backend={"llm": {**llm, "apiKeySecretRef": {"name": "openai", "key": "api-key"}}})
    env = env_of(children.deployment(keyed, SETTINGS, 1))
    assert env["PODIUM_LLM_API_KEY"] == {
        "name": "PODIUM_LLM_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}},
    }
    assert "PODIUM_LLM_API_KEY" not in env_of(children.deployment(make_agent(backend={"llm": llm}), SETTINGS, 1))


def test_tool_servers_and_memory_reach_the_pods_and_secret_headers_come_from_their_secrets() -> None:
    llm = {"model": "m", "baseURL": "http://model:8080/v1"}
    header = {"name": "Authorization", "secretKeyRef": {"name": "search", "key": "token"}}
    tools = {
        "servers": [
            {"name": "time", "stdio": {"command": "mcp-server-time"}},
            {"name": "search", "http": {"url": "https://mcp.example.com/mcp", "headers": [header]}},
        ],
        "calling": "schema",
    }
    agent = make_agent(backend={"llm": llm}, tools=tools, memory={"name": "notes"})
    config = json.loads(children.config_map(agent)["data"][children.CONFIG_FILE])
    assert config["tools"]["servers"][0]["stdio"] == {"command": "mcp-server-time", "args": []}
    assert config["tools"]["calling"] == "schema" and config["memory"]["name"] == "notes"
    assert "s3cret" not in json.dumps(config)
    env = env_of(children.deployment(agent, SETTINGS, 1))
    assert env["PODIUM_MCP_SEARCH__AUTHORIZATION"]["valueFrom"] == {"secretKeyRef": {"name": "search", "key": "token"}}
    # A change of the tools rolls the pods (the runtime builds its tool servers at start).
    other = make_agent(backend={"llm": llm}, tools={**tools, "maxCalls": 2}, memory={"name": "notes"})
    assert (
        children.pod_template(agent, SETTINGS)["metadata"]["annotations"]
        != children.pod_template(other, SETTINGS)["metadata"]["annotations"]
    )
