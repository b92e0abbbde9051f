"""kopf handlers for Orchestrations: one daemon per run, a note on changes after the end, cleanup on delete.

The daemon is the run: kopf starts it for every Orchestration (again after an operator restart, which is how a
Running one resumes) and stops it on deletion or operator exit. Deletion cancels the run and purges its keys.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from podium.operator import orchestration_run, runtime

ORCHESTRATIONS = ("podium.dev", "v1alpha1", "orchestrations")


def _deps(body: kopf.Body, logger: logging.Logger | kopf.ObjectLogger) -> orchestration_run.Deps:
    rt = runtime.get()

    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    return orchestration_run.Deps(kube=rt.kube, redis=rt.redis, post_event=post, logger=logger)  # type: ignore[arg-type]


def _deleted(stopped: kopf.DaemonStopped) -> bool:
    reason = stopped.reason
    return reason is not None and bool(reason & kopf.DaemonStoppingReason.RESOURCE_DELETED)


@kopf.daemon(*ORCHESTRATIONS, cancellation_timeout=15.0)  # type: ignore[arg-type]
async def run(body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.ObjectLogger, **_: Any) -> None:
    deps = _deps(body, logger)
    await orchestration_run.drive(deps, body, lambda: bool(stopped))
    if _deleted(stopped):
        meta = body["metadata"]
        removed = await orchestration_run.cleanup(deps.redis, meta["namespace"], meta["name"])
        logger.info("run cancelled by deletion; %d keys purged", removed)


@kopf.on.update(*ORCHESTRATIONS, field="spec")
async def spec_changed(body: kopf.Body, **_: Any) -> None:
    """A finished run is never re-run: say so in a condition rather than silently ignore the edit."""
    patch = orchestration_run.ignored_change(body)
    if patch is not None:
        meta = body["metadata"]
        await runtime.get().kube.patch_status("orchestrations", meta["namespace"], meta["name"], patch)
        kopf.event(body, type="Warning", reason="SpecIgnored", message=patch["conditions"][-1]["message"])


@kopf.on.delete(*ORCHESTRATIONS)
async def cleanup(body: kopf.Body, **_: Any) -> None:
    """The daemon cancelled the run already; purge again in case it wrote a key on its way out."""
    meta = body["metadata"]
    await orchestration_run.cleanup(runtime.get().redis, meta["namespace"], meta["name"])
