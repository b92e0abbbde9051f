"""kopf handlers for Agents: reconcile on every change and on resume, re-check health on a timer, clean up.

:func:`register` adds them to a registry once the settings are known (the timer's interval is one of them).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from podium.operator import metrics, runtime
from podium.operator.agents.children import short_value
from podium.operator.agents.reconcile import DeploymentView, Read
from podium.operator.settings import Settings

AGENTS = ("podium.dev", "v1alpha1", "agents")


def _key(body: kopf.Body) -> tuple[str, str]:
    return body["metadata"]["namespace"], short_value(body["metadata"]["name"])


def _deployment(body: kopf.Body, agent_deployments: kopf.Index) -> DeploymentView | None:
    found = list(agent_deployments.get(_key(body), []))
    return found[0] if found else None


async def _observe(
    rt: runtime.Runtime, body: kopf.Body, deployment: DeploymentView | None, agent_pods: kopf.Index
) -> dict[str, Any]:
    """Status from the watch-fed indexes (and the Deployment as just applied, which they may not hold yet): no API
    reads, one status patch only when something changed."""
    return await rt.agents.observe(dict(body), deployment, list(agent_pods.get(_key(body), [])))


def _read_for(reason: kopf.Reason | None, retry: int) -> Read:
    """A first try on creation has no children to read (a retry may have made some); a resume (operator start)
    shares the namespace's list with every other Agent; a spec change reads its own children."""
    if reason == kopf.Reason.CREATE and retry == 0:
        return "none"
    return "snapshot" if reason == kopf.Reason.RESUME else "get"


async def reconcile(
    body: kopf.Body,
    memo: kopf.Memo,
    agent_deployments: kopf.Index,
    agent_pods: kopf.Index,
    logger: logging.Logger,
    reason: kopf.Reason | None = None,
    retry: int = 0,
    **_: Any,
) -> None:
    rt = runtime.of(memo)
    with metrics.timed("Agent") as outcome:
        try:
            applied = await rt.agents.apply(
                dict(body), read=_read_for(reason, retry), deployment=_deployment(body, agent_deployments)
            )
            await _observe(rt, body, _deployment(body, agent_deployments) or applied, agent_pods)
        except Exception as e:
            outcome.value = "retry"
            logger.warning("reconcile failed, will retry: %s", e)
            raise kopf.TemporaryError(str(e), delay=10) from e


async def health(
    body: kopf.Body, memo: kopf.Memo, agent_deployments: kopf.Index, agent_pods: kopf.Index, **_: Any
) -> None:
    """Heartbeats and readiness; every resync period, also re-apply the children (drift, a lost ACL user)."""
    rt = runtime.of(memo)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    with metrics.timed("AgentHealth"):
        indexed = _deployment(body, agent_deployments)
        if rt.agents.due_for_apply(namespace, name, deployment_seen=indexed is not None):
            indexed = await rt.agents.apply(dict(body), read="snapshot", deployment=indexed)
        await _observe(rt, body, indexed, agent_pods)


async def cleanup(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Children go with their owner (garbage collection); the Redis user and keys are ours to remove."""
    with metrics.timed("AgentDelete"):
        await runtime.of(memo).agents.delete(dict(body))


# kopf's callback protocols know neither index kwargs nor a narrower logger type: hence the ignores below.
def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    kopf.on.resume(*AGENTS, registry=registry)(reconcile)  # type: ignore[arg-type]
    kopf.on.create(*AGENTS, registry=registry)(reconcile)  # type: ignore[arg-type]
    kopf.on.update(*AGENTS, field="spec", registry=registry)(reconcile)  # type: ignore[arg-type]
    every = settings.health_interval_seconds
    # backoff: a failed round (Redis restarting under it) is tried again at the next interval, not kopf's 60 s later.
    health_timer = kopf.timer(*AGENTS, interval=every, initial_delay=every, backoff=every, registry=registry)
    health_timer(health)  # type: ignore[arg-type]
    kopf.on.delete(*AGENTS, registry=registry)(cleanup)
