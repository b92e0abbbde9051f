"""In-memory indexes fed by kopf's watches, so periodic health checks cost no API calls."""

from __future__ import annotations

from typing import Any

import kopf

from podium.operator.agents.children import AGENT_LABEL, APPLIED_REPLICAS_ANNOTATION, HASH_ANNOTATION, MANAGED_BY
from podium.operator.agents.health import PodView
from podium.operator.agents.reconcile import DeploymentView, pod_view
from podium.operator.teams.status import AgentView

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
COMPARED = (HASH_ANNOTATION, APPLIED_REPLICAS_ANNOTATION)


def agent_deployments(
    namespace: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    spec: dict[str, Any],
    status: dict[str, Any],
    **_: Any,
) -> dict[tuple[str, str], DeploymentView]:
    view = DeploymentView(
        spec_replicas=int(spec.get("replicas", 1)),
        replicas=int(status.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        annotations=tuple((k, annotations[k]) for k in COMPARED if k in annotations),
    )
    return {(namespace, labels[AGENT_LABEL]): view}


def agent_pods(
    namespace: str, name: str, labels: dict[str, str], status: dict[str, Any], meta: dict[str, Any], **_: Any
) -> dict[tuple[str, str], PodView]:
    return {(namespace, labels[AGENT_LABEL]): pod_view(name, dict(status), dict(meta))}


def agents_by_namespace(
    namespace: str, name: str, labels: dict[str, str], spec: dict[str, Any], status: dict[str, Any], **_: Any
) -> dict[str, AgentView]:
    view = AgentView(
        name=name,
        labels=dict(labels),
        priority=str(spec.get("priority", "important")),
        phase=status.get("phase"),
        replicas=int(spec.get("replicas", 1)),
    )
    return {namespace: view}


# The indexers take plain dicts where kopf's protocol names its Mapping views: hence the ignores.
def register(registry: kopf.OperatorRegistry) -> None:
    kopf.index("apps", "v1", "deployments", labels=MANAGED, registry=registry)(agent_deployments)  # type: ignore[arg-type]
    kopf.index("", "v1", "pods", labels=MANAGED, registry=registry)(agent_pods)  # type: ignore[arg-type]
    kopf.index("podium.dev", "v1alpha1", "agents", registry=registry)(agents_by_namespace)  # type: ignore[arg-type]
