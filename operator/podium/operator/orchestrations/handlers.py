"""kopf handlers for Orchestrations: one daemon per run, a note on changes after the end, cleanup on delete.

The daemon is the run: kopf starts it for every Orchestration (again after an operator restart, which is how a
Running one resumes) and stops it on deletion or operator exit. Deletion cancels the run, cancels its tasks still
queued in agents' inboxes (so they never run) and purges its keys.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from podium.operator import runtime
from podium.operator.orchestrations import directory as orchestration_directory
from podium.operator.orchestrations import run as orchestration_run

ORCHESTRATIONS = ("podium.dev", "v1alpha1", "orchestrations")
Log = logging.Logger | logging.LoggerAdapter[Any]


def _deps(rt: runtime.Runtime, body: kopf.Body, logger: logging.Logger | kopf.ObjectLogger) -> orchestration_run.Deps:

    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    return orchestration_run.Deps(kube=rt.kube, redis=rt.redis, post_event=post, logger=logger)  # type: ignore[arg-type]


def _deleted(stopped: kopf.DaemonStopped) -> bool:
    reason = stopped.reason
    return reason is not None and bool(reason & kopf.DaemonStoppingReason.RESOURCE_DELETED)


async def run(
    body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: kopf.ObjectLogger, **_: Any
) -> None:
    rt = runtime.of(memo)
    await orchestration_run.drive(_deps(rt, body, logger), body, lambda: bool(stopped))
    if _deleted(stopped):
        purged, removed = await _cancel_and_purge(rt, body, logger)
        logger.info("run cancelled by deletion; %d queued tasks removed, %d keys purged", sum(removed.values()), purged)


async def spec_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A finished run is never re-run: say so in a condition rather than silently ignore the edit."""
    patch = orchestration_run.ignored_change(body)
    if patch is not None:
        meta = body["metadata"]
        await runtime.of(memo).kube.patch_status("orchestrations", meta["namespace"], meta["name"], patch)
        kopf.event(body, type="Warning", reason="SpecIgnored", message=patch["conditions"][-1]["message"])


async def _namespace_agents(rt: runtime.Runtime, namespace: str, logger: Log) -> list[str]:
    # The journal names the agents the run dispatched to; the namespace's Agents also cover a dispatch that
    # raced the journal write. Best effort: deletion must not hang on the API server (the journal suffices).
    try:
        snapshot = await orchestration_directory.fetch(rt.kube, namespace)
    except Exception as exc:
        logger.warning("cannot list the namespace's Agents to cancel queued tasks (journal only): %s", exc)
        return []
    return [str(a["metadata"]["name"]) for a in snapshot.agents]


async def _cancel_and_purge(rt: runtime.Runtime, body: kopf.Body, logger: Log) -> tuple[int, dict[str, int]]:
    meta = body["metadata"]
    agents = await _namespace_agents(rt, meta["namespace"], logger)
    return await orchestration_run.cleanup(
        rt.redis, meta["namespace"], meta["name"], uid=meta.get("uid"), agents=agents
    )


async def cleanup(body: kopf.Body, memo: kopf.Memo, logger: Log, **_: Any) -> None:
    """The daemon cancelled the run already; cancel and purge again in case it wrote on its way out."""
    await _cancel_and_purge(runtime.of(memo), body, logger)


# kopf's callback protocols know neither index kwargs nor a narrower logger type: hence the ignores below.
def register(registry: kopf.OperatorRegistry) -> None:
    # Without a backoff kopf cancels the daemon the moment deletion starts (its stop check polls every 0.2 s, so
    # it never wins that race): its own cancel-and-purge is skipped, and when the cancelled daemon is not done
    # within a few loop cycles kopf re-checks only after the whole timeout, so `kubectl delete` took 15 s now and
    # then. The backoff lets it stop by itself (~0.5 s); the short timeout bounds the wait if it does not.
    kopf.daemon(*ORCHESTRATIONS, cancellation_backoff=1.0, cancellation_timeout=5.0, registry=registry)(run)  # type: ignore[arg-type]
    kopf.on.update(*ORCHESTRATIONS, field="spec", registry=registry)(spec_changed)
    kopf.on.delete(*ORCHESTRATIONS, registry=registry)(cleanup)
