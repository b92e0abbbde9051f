"""kopf handlers for Agents: reconcile on every change and on resume, re-check health on a timer, clean up."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from podium.operator import metrics, runtime
from podium.operator.agents.children import short_value
from podium.operator.settings import current as settings

AGENTS = ("podium.dev", "v1alpha1", "agents")


def _key(body: kopf.Body) -> tuple[str, str]:
    return body["metadata"]["namespace"], short_value(body["metadata"]["name"])


async def _observe(body: kopf.Body, agent_deployments: kopf.Index, agent_pods: kopf.Index) -> dict[str, Any]:
    """Status from the watch-fed indexes: no API reads, one status patch only when something changed."""
    key = _key(body)
    deployments = list(agent_deployments.get(key, []))
    return await runtime.get().agents.observe(
        dict(body), deployments[0] if deployments else None, list(agent_pods.get(key, []))
    )


@kopf.on.resume(*AGENTS)
@kopf.on.create(*AGENTS)
@kopf.on.update(*AGENTS, field="spec")  # type: ignore[arg-type]
async def reconcile(
    body: kopf.Body, agent_deployments: kopf.Index, agent_pods: kopf.Index, logger: logging.Logger, **_: Any
) -> None:
    with metrics.timed("Agent") as outcome:
        try:
            await runtime.get().agents.apply(dict(body))
            await _observe(body, agent_deployments, agent_pods)
        except Exception as e:
            outcome.value = "retry"
            logger.warning("reconcile failed, will retry: %s", e)
            raise kopf.TemporaryError(str(e), delay=10) from e


@kopf.timer(*AGENTS, interval=settings.health_interval_seconds, initial_delay=settings.health_interval_seconds)  # type: ignore[arg-type]
async def health(body: kopf.Body, agent_deployments: kopf.Index, agent_pods: kopf.Index, **_: Any) -> None:
    """Heartbeats and readiness; every resync period, also re-apply the children (drift, a lost ACL user)."""
    rt = runtime.get()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    with metrics.timed("AgentHealth"):
        key = _key(body)
        if rt.agents.due_for_resync(namespace, name) or not list(agent_deployments.get(key, [])):
            await rt.agents.apply(dict(body))
        await _observe(body, agent_deployments, agent_pods)


@kopf.on.delete(*AGENTS)
async def cleanup(body: kopf.Body, **_: Any) -> None:
    """Children go with their owner (garbage collection); the Redis user and keys are ours to remove."""
    with metrics.timed("AgentDelete"):
        await runtime.get().agents.delete(dict(body))
