"""What an Agent becomes: its Deployment, Service, ConfigMap and Secret, as plain manifests (no I/O).

Every builder is a pure function of the Agent (and the operator's settings), so what the operator would
create can be tested and diffed without a cluster. Each child carries a hash of its desired content in an
annotation: the reconciler patches a child only when that hash changes, so re-running a reconcile (a timer
tick, an operator restart) touches nothing that is already right.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from podium.api.agent import LLM_API_KEY_ENV, Agent
from podium.api.common import API_VERSION
from podium.api.tools import header_env

MANAGED_BY = "podium-operator"
AGENT_LABEL = "podium.dev/agent"
HASH_ANNOTATION = "podium.dev/desired-hash"
CONFIG_HASH_ANNOTATION = "podium.dev/config-hash"
APPLIED_REPLICAS_ANNOTATION = "podium.dev/applied-replicas"
CONFIG_FILE = "agent.json"
CONFIG_DIR = "/etc/podium"
HTTP_PORT = 8080
CONTAINER = "agent"

# Pod-template override keys and where they go. Anything else in spec.template is refused with a clear
# message instead of being silently ignored.
CONTAINER_KEYS = {
    "image",
    "imagePullPolicy",
    "resources",
    "env",
    "envFrom",
    "volumeMounts",
    "command",
    "args",
    "workingDir",
}
POD_KEYS = {
    "nodeSelector",
    "tolerations",
    "affinity",
    "serviceAccountName",
    "priorityClassName",
    "imagePullSecrets",
    "volumes",
    "topologySpreadConstraints",
    "terminationGracePeriodSeconds",
    "runtimeClassName",
}
META_KEYS = {"labels", "annotations"}
TEMPLATE_KEYS = CONTAINER_KEYS | POD_KEYS | META_KEYS

# Spec fields the agent runtime reads from its config file. Every field of the spec is in exactly one of these two
# lists (a unit test holds them to it): a field left out of the config is silently missing in every pod.
CONFIG_FIELDS = (
    "role",
    "description",
    "capabilities",
    "backend",
    "concurrency",
    "resilience",
    "pricing",
    "priority",
    "maintenance",
    "a2a",
    "tools",
    "memory",
    "blackboard",  # the keys an llm agent's model is asked to write
)
# The operator's and the engine's alone: the pod template and its scaling, and what the engine reads from the Agent
# itself (its targets, the messages it is sent).
OPERATOR_FIELDS = ("replicas", "template", "autoscaling", "performance", "subscriptions", "messageTasks")


class TemplateError(ValueError):
    """spec.template cannot be applied; the message says which field and why."""


@dataclass(frozen=True)
class ChildSettings:
    """The operator-wide inputs the builders need."""

    agent_image: str
    redis_url: str
    image_pull_policy: str = "IfNotPresent"
    extra_env: tuple[tuple[str, str], ...] = ()  # more variables for every agent container (tracing's OTEL_*)


def short_value(value: str, limit: int = 63) -> str:
    """A label value or DNS label of at most ``limit`` characters; long names keep a hash suffix to stay unique."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return value[: limit - 9].rstrip("-.") + "-" + digest


def names(agent: str) -> dict[str, str]:
    """Child object names. Service names must be DNS-1035 labels (<= 63, start with a letter)."""
    service = agent if agent[0].isalpha() else f"a-{agent}"
    return {
        "deployment": agent,
        "service": short_value(service.replace(".", "-")),
        "configmap": f"{agent[:240]}-config" if len(agent) > 240 else f"{agent}-config",
        "secret": f"{agent[:240]}-redis" if len(agent) > 240 else f"{agent}-redis",
    }


def selector_labels(agent: str) -> dict[str, str]:
    return {AGENT_LABEL: short_value(agent)}


def selector_string(agent: str) -> str:
    """The label selector kept in status.selector, which `kubectl scale` and an HPA read."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(agent).items())


def common_labels(agent: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "podium-agent",
        "app.kubernetes.io/instance": short_value(agent),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **selector_labels(agent),
    }


def owner_reference(agent: Agent) -> dict[str, Any]:
    if not agent.metadata.uid or not agent.metadata.name:
        raise ValueError("the Agent needs metadata.name and metadata.uid to own children")
    return {
        "apiVersion": API_VERSION,
        "kind": "Agent",
        "name": agent.metadata.name,
        "uid": agent.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _meta(agent: Agent, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": agent.metadata.namespace,
        "labels": common_labels(_name(agent)),
        "ownerReferences": [owner_reference(agent)],
    }


def _name(agent: Agent) -> str:
    if not agent.metadata.name:
        raise ValueError("the Agent has no metadata.name")
    return agent.metadata.name


def _stamp(manifest: dict[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Record the hash of the desired content (minus ``ignore``d spec keys) in an annotation."""
    hashed = copy.deepcopy(manifest)
    for key in ignore:
        hashed.get("spec", {}).pop(key, None)
    manifest["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = content_hash(hashed)
    return manifest


def agent_config(agent: Agent) -> dict[str, Any]:
    """The Agent spec fields the runtime needs, in wire (camelCase) form."""
    wire = agent.spec.to_wire()
    return {key: wire[key] for key in CONFIG_FIELDS if key in wire}


def config_map(agent: Agent) -> dict[str, Any]:
    name = _name(agent)
    body = json.dumps(agent_config(agent), sort_keys=True, indent=2)
    return _stamp(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(agent, names(name)["configmap"]),
            "data": {CONFIG_FILE: body},
        }
    )


def redis_username(namespace: str, agent: str) -> str:
    return f"podium-agent:{namespace}/{agent}"


def secret(agent: Agent, password: str) -> dict[str, Any]:
    """The agent's own Redis credentials. The password is generated once and kept (see reconcile)."""
    name = _name(agent)
    namespace = agent.metadata.namespace or "default"
    return _stamp(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": _meta(agent, names(name)["secret"]),
            # data, not stringData: server-side apply compares what is stored.
            "data": {"username": _b64(redis_username(namespace, name)), "password": _b64(password)},
        }
    )


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def a2a_port(agent: Agent) -> int | None:
    """The A2A server's port when the Agent serves A2A (spec.a2a.enabled), else None."""
    a2a = agent.spec.a2a
    return a2a.port if a2a is not None and a2a.enabled else None


def service(agent: Agent) -> dict[str, Any]:
    name = _name(agent)
    ports: list[dict[str, Any]] = [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}]
    a2a = a2a_port(agent)
    if a2a is not None:
        ports.append({"name": "a2a", "port": a2a, "targetPort": "a2a", "protocol": "TCP"})
    return _stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(agent, names(name)["service"]),
            "spec": {"selector": selector_labels(name), "ports": ports},
        }
    )


def _merge_env(base: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """User env vars override ours by name, except the ones the runtime's identity depends on."""
    protected = {"PODIUM_AGENT_NAME", "PODIUM_NAMESPACE", "PODIUM_REDIS_USERNAME", "PODIUM_REDIS_PASSWORD"}
    out = {e["name"]: e for e in base}
    for item in extra:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TemplateError("spec.template.env: every entry needs a string name")
        if item["name"] in protected:
            raise TemplateError(f"spec.template.env: {item['name']} is set by the operator and cannot be overridden")
        out[item["name"]] = item
    return list(out.values())


def apply_template(pod: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Merge spec.template overrides into a pod template; unknown keys raise :class:`TemplateError`."""
    if not overrides:
        return pod
    unknown = sorted(set(overrides) - TEMPLATE_KEYS)
    if unknown:
        raise TemplateError(
            f"spec.template: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TEMPLATE_KEYS))}"
        )
    pod = copy.deepcopy(pod)
    container = pod["spec"]["containers"][0]
    for key, value in overrides.items():
        if key == "image" and (not isinstance(value, str) or not value.strip()):
            raise TemplateError("spec.template.image: must be a non-empty image reference")
        if key == "env":
            if not isinstance(value, list):
                raise TemplateError("spec.template.env: must be a list of {name, value|valueFrom}")
            container["env"] = _merge_env(container["env"], value)
        elif key == "volumeMounts":
            container["volumeMounts"] = container["volumeMounts"] + list(value)
        elif key == "volumes":
            pod["spec"]["volumes"] = pod["spec"]["volumes"] + list(value)
        elif key in CONTAINER_KEYS:
            container[key] = value
        elif key in META_KEYS:
            if not isinstance(value, dict):
                raise TemplateError(f"spec.template.{key}: must be a map of strings")
            merged = {**value, **pod["metadata"].get(key, {})}  # ours win: the selector must keep matching
            pod["metadata"][key] = merged
        else:
            pod["spec"][key] = value
    return pod


def tool_header_env(agent: Agent) -> list[dict[str, Any]]:
    """The Secret-held headers of the Agent's remote tool servers, as env vars the kubelet fills from the Secrets
    (named by ``podium.api.tools.header_env``, which the runtime reads them by)."""
    env = []
    for server in agent.spec.tools.servers if agent.spec.tools is not None else []:
        for header in server.http.headers if server.http is not None else []:
            if header.secret_key_ref is not None:
                ref = {"name": header.secret_key_ref.name, "key": header.secret_key_ref.key}
                env.append({"name": header_env(server.name, header.name), "valueFrom": {"secretKeyRef": ref}})
    return env


def pod_template(agent: Agent, settings: ChildSettings) -> dict[str, Any]:
    name = _name(agent)
    namespace = agent.metadata.namespace or "default"
    child = names(name)
    secret_name = child["secret"]
    env: list[dict[str, Any]] = [
        {"name": "PODIUM_AGENT_NAME", "value": name},
        {"name": "PODIUM_NAMESPACE", "value": namespace},
        {"name": "PODIUM_REDIS_URL", "value": settings.redis_url},
        {"name": "PODIUM_REDIS_USERNAME", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "username"}}},
        {"name": "PODIUM_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}},
        {"name": "PODIUM_REPLICA", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "PODIUM_HTTP_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PODIUM_HTTP_PORT", "value": str(HTTP_PORT)},
        {"name": "PODIUM_CONFIG", "value": f"{CONFIG_DIR}/{CONFIG_FILE}"},
    ]
    llm = agent.spec.backend.llm
    if llm is not None and llm.api_key_secret_ref is not None:
        # The kubelet reads the Secret: the key never passes through the operator or the agent's ConfigMap.
        ref = {"name": llm.api_key_secret_ref.name, "key": llm.api_key_secret_ref.key}
        env.append({"name": LLM_API_KEY_ENV, "valueFrom": {"secretKeyRef": ref}})
    env.extend(tool_header_env(agent))
    env.extend({"name": name, "value": value} for name, value in settings.extra_env)
    # Maintenance reaches running replicas through the mounted file; rolling the pods for it would defeat
    # the drain, so it is left out of the hash that triggers a rollout. So is the description (the A2A card reads
    # it live): words for people are no reason to restart work.
    rollout_config = {k: v for k, v in agent_config(agent).items() if k not in ("maintenance", "description")}
    grace = max(30, agent.spec.resilience.timeout_seconds + 5)
    ports: list[dict[str, Any]] = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    a2a = a2a_port(agent)
    if a2a is not None:
        ports.append({"name": "a2a", "containerPort": a2a, "protocol": "TCP"})
    pod: dict[str, Any] = {
        "metadata": {
            "labels": common_labels(name),
            "annotations": {
                CONFIG_HASH_ANNOTATION: content_hash(rollout_config),
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(HTTP_PORT),
            },
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": min(grace, 3600),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": CONTAINER,
                    "image": settings.agent_image,
                    "imagePullPolicy": settings.image_pull_policy,
                    "command": ["podium", "agent"],
                    "env": env,
                    "ports": ports,
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", "port": "http"},
                        "periodSeconds": 2,
                        "failureThreshold": 2,
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http"},
                        "initialDelaySeconds": 5,
                        "periodSeconds": 10,
                        "failureThreshold": 3,
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": child["configmap"]}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }
    return apply_template(pod, agent.spec.template)


def desired_replicas(spec_replicas: int, last_applied: int | None, current: int | None) -> int:
    """The Deployment's replicas: follow spec changes, but never undo a scaler that acted on the Deployment.

    ``kubectl scale agent`` and an HPA on the Agent change spec.replicas, which we follow. If someone scales
    the Deployment itself while the Agent's spec is unchanged since we last applied it, we keep their number.
    """
    if current is None or last_applied is None or spec_replicas != last_applied:
        return spec_replicas
    return current


def deployment(agent: Agent, settings: ChildSettings, replicas: int) -> dict[str, Any]:
    name = _name(agent)
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(agent, names(name)["deployment"]),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod_template(agent, settings),
        },
    }
    # Replicas stay out of the hash: a scale is a patch of one field, not a change of the workload.
    _stamp(manifest, ignore=("replicas",))
    manifest["metadata"]["annotations"][APPLIED_REPLICAS_ANNOTATION] = str(agent.spec.replicas)
    return manifest
