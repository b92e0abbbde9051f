"""Operator start-up and shutdown: kopf settings, the Kubernetes client and the Redis connection, kept in the memo."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import redis.asyncio as aioredis

from podium.api.common import FINALIZER
from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect, redact
from podium.dataplane.library import ensure_library
from podium.dataplane.migrate import migrate
from podium.operator import crds, metrics, runtime
from podium.operator.agents.reconcile import AgentReconciler
from podium.operator.kube import Kube, describe_error, load_config
from podium.operator.orchestrations import handlers as orchestrations

PREFIX = "podium.dev"
REDIS_CONNECTIONS = 64


def post_event(body: Any, type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message)


async def start(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    conf = runtime.settings_of(memo)
    # Progress and diff-base in annotations: the CRDs' structural status schema would prune status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # Bounded watches so a silently dropped connection is noticed; the client timeout outlives the server's.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.batching.error_delays = (1, 2, 5, 10, 20, 30, 60)
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 8
    kube = Kube(load_config())
    try:
        stale = crds.outdated(await crds.installed(kube))
    except Exception as e:  # a check, not a dependency: the API server's own errors show soon enough
        logger.warning("cannot compare the installed CRDs with this operator's: %s", describe_error(e))
        stale = []
    metrics.CRDS_OUTDATED.set(len(stale))
    if stale:
        logger.error(
            "the installed CRDs %s are not this operator's version (Helm never upgrades a chart's crds/): the API "
            "server may refuse the status this operator writes until you apply them: %s",
            ", ".join(stale),
            crds.APPLY,
        )
    # A blocking pool: a burst (a thousand Agents' ACL users, a hundred runs dispatching at once) waits for one of
    # its connections instead of failing with "Too many connections" and being retried seconds later.
    redis = connect(
        conf.redis_url,
        password=conf.redis_password,
        health_check_interval=30,
        pool_class=aioredis.BlockingConnectionPool,
        max_connections=REDIS_CONNECTIONS,
        timeout=30,
    )
    try:
        await redis.ping()
        # Agents call the bus's functions: they must be there before the first Agent's replicas start.
        library = await ensure_library(redis, max_bytes=conf.max_payload_bytes)
    except (aioredis.ConnectionError, aioredis.TimeoutError) as e:
        # Installed together, Redis usually starts a moment after the operator: retry soon, not after kopf's 60 s.
        await redis.aclose()
        raise kopf.TemporaryError(f"Redis at {redact(conf.redis_url)} not reachable yet: {e}", delay=2) from e
    except aioredis.ResponseError as e:
        await redis.aclose()
        hint = " (Podium needs Redis 7.0 or later: the bus is a function library)" if "unknown" in str(e) else ""
        raise kopf.PermanentError(f"cannot load the podium function library into Redis: {e}{hint}") from e
    moved = await migrate(redis, library)  # keys of the layout before per-kind key spaces, once
    if moved is not None and (moved.moved or moved.kept or moved.dropped):
        logger.info(
            "moved %d keys to per-kind key spaces (%d results sealed, %d dedupe markers dropped); %d left in place: %s",
            moved.moved,
            moved.sealed,
            moved.dropped,
            len(moved.kept),
            moved.kept[:10],
        )
    reconciler = AgentReconciler(kube, redis, conf, post_event)
    memo.runtime = rt = runtime.Runtime(conf, kube, redis, reconciler, Bus(redis))
    # Every replica drives its share of the runs, whether kopf peering made it the active one or a standby.
    rt.runs = orchestrations.start_runs(rt)
    await rt.runs.start()
    logger.info("podium operator started: redis %s, agent image %s", redact(conf.redis_url), conf.agent_image)


async def stop(memo: kopf.Memo, **_: Any) -> None:
    try:
        current = runtime.of(memo)
    except RuntimeError:
        return
    if current.runs is not None:
        await current.runs.stop()
    await current.bus.close()
    await current.redis.aclose()
    current.kube.close()
    del memo["runtime"]


def register(registry: kopf.OperatorRegistry) -> None:
    # A registry of our own starts empty: log in as kopf's default one would, with the kubernetes client's own
    # configuration (KUBECONFIG, ~/.kube/config, or the pod's service account).
    kopf.on.login(registry=registry, errors=kopf.ErrorsMode.IGNORED)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(start)
    kopf.on.cleanup(registry=registry)(stop)
