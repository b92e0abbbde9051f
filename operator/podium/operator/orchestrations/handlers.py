"""Orchestrations in the operator: the runs, sharded over the replicas, and their objects' upkeep. No kopf handler.

The runs are not kopf daemons: kopf peering would keep them all on the one elected replica. Every replica runs a
:class:`~podium.operator.orchestrations.shards.Sharder` (started with the operator, :func:`start_runs`) that
drives its share of them (again after an operator restart or a replica's death, which is how a Running one
resumes) and stops a run on deletion or operator exit. The same replica looks after the run's object: the
``podium.dev/cleanup`` finalizer, and after deletion the cleanup behind it (the run cancelled, its tasks still
queued in agents' inboxes cancelled so they never run, its keys purged); a note on spec changes after the end.
kopf did those on the elected replica before, which made it read every status patch of every run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from podium.api.common import FINALIZER
from podium.dataplane.connection import connect
from podium.operator import runtime
from podium.operator.orchestrations import directory as orchestration_directory
from podium.operator.orchestrations import run as orchestration_run
from podium.operator.orchestrations.shards import ObjectChores, Sharder

Log = logging.Logger | logging.LoggerAdapter[Any]


class RunLog(logging.LoggerAdapter[logging.Logger]):
    """The run's log lines name the run, as kopf's per-object logger did."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['run'] if self.extra else '?'}] {msg}", kwargs


def start_runs(rt: runtime.Runtime) -> Sharder:
    """The replica's run sharder: drives its share of the Orchestrations, cleans up after deleted ones."""
    base = logging.getLogger("podium.orchestrations")
    snapshots = orchestration_directory.Snapshots(rt.kube)

    async def drive(body: dict[str, Any], stopping: Callable[[], bool]) -> None:
        meta = body["metadata"]
        logger = RunLog(base, {"run": f"{meta['namespace']}/{meta['name']}"})

        def post(type_: str, reason: str, message: str) -> None:
            rt.kube.post_event(body, type_, reason, message)

        deps = orchestration_run.Deps(
            kube=rt.kube,
            redis=rt.redis,
            post_event=post,
            logger=logger,  # type: ignore[arg-type]
            snapshots=snapshots,
            bus=rt.bus,
        )
        await orchestration_run.drive(deps, body, stopping)

    async def cleanup(body: dict[str, Any]) -> None:
        meta = body["metadata"]
        logger = RunLog(base, {"run": f"{meta['namespace']}/{meta['name']}"})
        purged, removed = await _cancel_and_purge(rt, body, logger)
        logger.info("run cancelled by deletion; %d queued tasks removed, %d keys purged", sum(removed.values()), purged)

    async def guard(body: dict[str, Any]) -> None:
        await rt.kube.add_finalizer("orchestrations", body, FINALIZER)

    async def release(body: dict[str, Any]) -> None:
        await rt.kube.remove_finalizer("orchestrations", body, FINALIZER)

    async def note(body: dict[str, Any]) -> None:
        """A finished run is never re-run: say so in a condition rather than silently ignore the edit."""
        patch = orchestration_run.ignored_change(body)
        if patch is not None:
            meta = body["metadata"]
            await rt.kube.patch_status("orchestrations", meta["namespace"], meta["name"], patch)
            rt.kube.post_event(body, "Warning", "SpecIgnored", patch["conditions"][-1]["message"])

    def stalled(body: dict[str, Any], why: str) -> None:
        rt.kube.post_event(body, "Warning", "CleanupFailed", why)

    def connect_keeper() -> aioredis.Redis:
        # The lease keeper's own client (another thread, another event loop; one command at a time), bounded waits.
        lease = rt.settings.run_lease_seconds
        return connect(rt.settings.redis_url, password=rt.settings.redis_password, socket_timeout=lease)

    return Sharder(
        rt.kube,
        rt.redis,
        rt.settings.namespaces,
        drive,
        cleanup,
        connect_keeper,
        lease_seconds=rt.settings.run_lease_seconds,
        objects=ObjectChores(guard=guard, release=release, note=note, stalled=stalled),
    )


async def _namespace_agents(rt: runtime.Runtime, namespace: str, logger: Log) -> list[str]:
    # The journal names the agents the run dispatched to; the namespace's Agents also cover a dispatch that
    # raced the journal write. Best effort: deletion must not hang on the API server (the journal suffices).
    try:
        snapshot = await orchestration_directory.fetch(rt.kube, namespace)
    except Exception as exc:
        logger.warning("cannot list the namespace's Agents to cancel queued tasks (journal only): %s", exc)
        return []
    return [str(a["metadata"]["name"]) for a in snapshot.agents]


async def _cancel_and_purge(rt: runtime.Runtime, body: dict[str, Any], logger: Log) -> tuple[int, dict[str, int]]:
    meta = body["metadata"]
    agents = await _namespace_agents(rt, meta["namespace"], logger)
    return await orchestration_run.cleanup(
        rt.redis, meta["namespace"], meta["name"], uid=meta.get("uid"), agents=agents
    )
