"""Reconcile one Agent: its children and Redis user (``apply``), then its health and status (``observe``).

Both are level-based: they look at what exists and make it match, so running them again (a timer tick, an
operator restart, a missed event) is harmless. Each reads first, decides in pure functions (:func:`desired_children`,
:func:`apply_events`, :func:`status_events`) and acts last. The kopf glue lives in
``podium.operator.agents.handlers``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import redis.asyncio as aioredis
from pydantic import ValidationError

from podium.api.agent import Agent, AgentPhase, Autoscaling, BreakerState, PerformanceTargets
from podium.api.validation import explain
from podium.dataplane.purge import purge_agent
from podium.engine.resilience import Breaker
from podium.operator import metrics
from podium.operator.agents import autoscale, children, redis_io
from podium.operator.agents import status as agent_status
from podium.operator.agents.children import ChildSettings, TemplateError
from podium.operator.agents.health import PodView, evaluate
from podium.operator.agents.status import Observed
from podium.operator.conditions import find, now_rfc3339, parse_rfc3339
from podium.operator.kube import Kube, secret_value
from podium.operator.settings import Settings

T = TypeVar("T")
log = logging.getLogger("podium.operator.agents.reconcile")

# (body, type "Normal"/"Warning", reason, message): kopf.event in the operator, a list in tests.
EventFn = Callable[[Any, str, str, str], None]
Read = Literal["get", "snapshot", "none"]


# A Deployment missing from the index this long after its Agent's last apply began is applied again.
MISSING_DEPLOYMENT_SECONDS = 15.0


@dataclass(frozen=True)
class DeploymentView:
    spec_replicas: int
    replicas: int
    ready: int
    annotations: tuple[tuple[str, str], ...] = ()  # the desired-hash and applied-replicas ones we compare

    def essence(self) -> dict[str, Any]:
        """As much of the Deployment as an apply compares (see ``kube._essence``)."""
        return {"metadata": {"annotations": dict(self.annotations)}, "spec": {"replicas": self.spec_replicas}}


@dataclass
class Memory:
    """Per-agent facts kept between rounds (rebuilt from status after an operator restart)."""

    restart_counts: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)  # pods we deleted, when
    last_apply: float = 0.0
    error: str | None = None
    password: str | None = None  # the Redis password this operator generated or read from the Secret
    # The autoscaler's recommendations inside the scale-down window (None: not rebuilt since the operator started),
    # and the generation the Agent reaches through our last scale: an older body is stale and must not re-decide.
    autoscale_window: autoscale.Window | None = None
    scaled_to_generation: int = 0
    # Kept here, not re-read from the body's status: a round that overlaps ours (the timer and the update handler
    # both observe) carries a status from before our patch and would write the old values back.
    last_scale_time: str | None = None
    autoscale_desired: int | None = None
    # What the last apply parsed and built, by what it was made of: a resync of an unchanged Agent (every resync
    # period, for every Agent) validates and builds nothing again.
    made: dict[str, tuple[Hashable, Any]] = field(default_factory=dict)

    def cached(self, slot: str, key: Hashable | None, make: Callable[[], T]) -> T:
        """``make()``, or what it gave the last time for the same ``key`` (``None``: not cacheable, made)."""
        held = self.made.get(slot)
        if key is not None and held is not None and held[0] == key:
            return cast(T, held[1])
        value = make()
        if key is not None:
            self.made[slot] = (key, value)
        return value


def pod_view(name: str, status: dict[str, Any], meta: dict[str, Any]) -> PodView:
    containers = status.get("containerStatuses") or []
    running_state = (containers[0].get("state") or {}).get("running") if containers else None
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    started = parse_rfc3339(running_state.get("startedAt")) if running_state else None
    if started is None and running_state is not None:
        started = parse_rfc3339(status.get("startTime"))
    return PodView(
        name=name,
        running=status.get("phase") == "Running" and running_state is not None,
        ready=ready,
        started_at=started,
        terminating=bool(meta.get("deletionTimestamp")),
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        last_exit=_last_exit(containers[0]) if containers else None,
        last_run_seconds=_last_run(containers[0]) if containers else None,
        cannot_start=_cannot_start(containers),
        created_at=parse_rfc3339(meta.get("creationTimestamp")),
    )


# The kubelet's reasons for a container it cannot create or whose image it cannot get: it retries them, but they
# last until someone fixes the spec, a Secret or ConfigMap, or the registry (unlike ContainerCreating).
CANNOT_START = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
    }
)


def _cannot_start(containers: list[dict[str, Any]]) -> str | None:
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CANNOT_START:
            said = " ".join(str(waiting.get("message") or "").split())[:300]
            return f"{waiting['reason']}" + (f": {said}" if said else "")
    return None


def _last_run(container: dict[str, Any]) -> float | None:
    ended = (container.get("lastState") or {}).get("terminated") or {}
    started, finished = parse_rfc3339(ended.get("startedAt")), parse_rfc3339(ended.get("finishedAt"))
    return finished - started if started is not None and finished is not None else None


def _last_exit(container: dict[str, Any]) -> str | None:
    ended = (container.get("lastState") or {}).get("terminated")
    if not ended:
        return None
    said = " ".join(str(ended.get("message") or "").split())[:300]  # the termination message, if it wrote one
    return (
        f"exit code {ended.get('exitCode')}"
        + (f" ({ended['reason']})" if ended.get("reason") else "")
        + (f": {said}" if said else "")
    )


def parse_agent(body: dict[str, Any]) -> tuple[Agent | None, str | None]:
    try:
        return Agent.model_validate(dict(body)), None
    except ValidationError as e:
        return None, "invalid Agent: " + "; ".join(explain(e))


@dataclass(frozen=True)
class Desired:
    """What an Agent's children should be, by kind in apply order. ``error``: the Deployment cannot be built from
    the spec; the other children are still applied and the last good Deployment keeps running."""

    manifests: dict[str, dict[str, Any]]
    error: str | None = None


def scale_of(deployment: dict[str, Any] | None) -> tuple[Any, Any]:
    """What a Deployment's replicas are, and what we last applied (its annotation): the scale the Agent keeps."""
    spec, meta = (deployment or {}).get("spec") or {}, (deployment or {}).get("metadata") or {}
    return spec.get("replicas"), (meta.get("annotations") or {}).get(children.APPLIED_REPLICAS_ANNOTATION)


def desired_children(
    agent: Agent, password: str, settings: ChildSettings, old_deployment: dict[str, Any] | None
) -> Desired:
    """The children to apply (pure)."""
    manifests = {
        "Secret": children.secret(agent, password),
        "ConfigMap": children.config_map(agent),
        "Service": children.service(agent),
    }
    current, last = scale_of(old_deployment)
    replicas = children.desired_replicas(agent.spec.replicas, int(last) if last else None, current)
    try:
        manifests["Deployment"] = children.deployment(agent, settings, replicas)
    except TemplateError as e:
        return Desired(manifests, str(e))
    return Desired(manifests)


# (type "Normal"/"Warning", reason, message) of an Event to post about the Agent.
Event = tuple[str, str, str]


def apply_events(outcomes: dict[str, str], namespace: str, name: str, replicas: int) -> list[Event]:
    """The Events that announce what an apply changed, one per kind of change (pure): a new Agent's four
    children are one Event, not four API writes."""
    created = [kind for kind, outcome in outcomes.items() if outcome == "created"]
    updated = [kind for kind, outcome in outcomes.items() if outcome == "updated"]
    out: list[Event] = []
    if created:
        out.append(("Normal", "Created", f"created {', '.join(created)} {namespace}/{name}"))
    if updated:
        verb = "it" if len(updated) == 1 else "them"
        out.append(("Normal", "Updated", f"updated {', '.join(updated)} to match the Agent's spec (changed {verb})"))
    if "scaled" in outcomes.values():
        out.append(("Normal", "Scaled", f"Deployment replicas set to {replicas}"))
    return out


BREAKER_REASONS = {"open": "BreakerOpened", "halfOpen": "BreakerHalfOpen", "closed": "BreakerClosed"}


def status_events(old: dict[str, Any], status: dict[str, Any]) -> list[Event]:
    """The Events of a breaker change and of a phase change, if any (pure)."""
    out: list[Event] = []
    before = (old.get("breaker") or {}).get("state") or BreakerState.closed.value
    after = (status.get("breaker") or {}).get("state") or before
    if after != before:
        kind = "Warning" if after == BreakerState.open.value else "Normal"
        failures = (status.get("breaker") or {}).get("failures", 0)
        out.append(
            (kind, BREAKER_REASONS[after], f"circuit breaker {before} -> {after} ({failures} failures in a row)")
        )
    if old.get("phase") and old.get("phase") != status["phase"]:
        kind = "Warning" if status["phase"] in ("Degraded", "Error") else "Normal"
        out.append((kind, f"Phase{status['phase']}", f"phase {old.get('phase')} -> {status['phase']}"))
    return out


def status_changed(old: dict[str, Any], status: dict[str, Any]) -> bool:
    return any(old.get(k) != v for k, v in status.items())


def breaker_from_status(status: dict[str, Any]) -> Breaker | None:
    """The breaker status last showed, for a round that could not read Redis."""
    shown = status.get("breaker")
    if not isinstance(shown, dict):
        return None
    opened = parse_rfc3339(shown.get("openedAt"))
    return Breaker(
        state=str(shown.get("state") or "closed"), failures=int(shown.get("failures") or 0), opened_at=opened or 0.0
    )


class AgentReconciler:
    def __init__(self, kube: Kube, redis: aioredis.Redis, settings: Settings, event: EventFn) -> None:
        self.kube, self.redis, self.settings, self.event = kube, redis, settings, event
        self.memory: dict[tuple[str, str], Memory] = {}
        self.phases: dict[tuple[str, str], str] = {}  # for the agents-by-phase gauge
        self._snapshots: dict[str, tuple[float, asyncio.Future[dict[tuple[str, str], dict[str, Any]]]]] = {}
        self.snapshot_seconds = min(30.0, settings.resync_seconds / 4)
        self.child_settings = ChildSettings(
            agent_image=settings.agent_image,
            redis_url=settings.pod_redis_url,
            extra_env=settings.tracing_env,
        )

    def remember(self, namespace: str, name: str) -> Memory:
        return self.memory.setdefault((namespace, name), Memory())

    async def apply(
        self, body: dict[str, Any], *, read: Read = "get", deployment: DeploymentView | None = None
    ) -> DeploymentView | None:
        """Create or update the children and the Redis user; an invalid spec leaves the last good workload up.

        How the children are read first (``read``), as the API server's load at a thousand Agents demands:
        ``get`` reads each (a spec change: the freshest view); ``snapshot`` takes them from the namespace's
        list, shared by every Agent reconciled within a few seconds (an operator start, the periodic resync:
        three LISTs per namespace instead of four GETs per Agent, the Deployment from the watch-fed index,
        ``deployment``); ``none``: the Agent was just created, so its
        children cannot exist yet and are applied unread. Stale children of an earlier Agent of the same name
        are simply overwritten, the Secret with a fresh password that the Redis user gets first.

        Returns the Deployment as this apply leaves it (``deployment``, or the one it just applied, which the
        watch-fed index may not hold yet), None when there is none (an invalid spec that never had one).
        """
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        mem = self.remember(namespace, name)
        mem.last_apply = time.monotonic()
        # The spec is all an Agent's children are made of besides its name, uid and the inputs named below.
        spec = (meta.get("uid"), meta["generation"]) if meta.get("uid") and meta.get("generation") else None
        agent, error = mem.cached("parsed", spec, lambda: parse_agent(body))
        if agent is None:
            self._set_error(body, mem, error or "invalid Agent")
            return deployment
        # Read: the children as they are.
        child = children.names(name)
        kinds = {"Secret": "secret", "ConfigMap": "configmap", "Service": "service", "Deployment": "deployment"}
        existing: dict[str, dict[str, Any] | None]
        if read == "none":
            existing = dict.fromkeys(kinds)
        elif read == "snapshot":
            listed = await self._children(namespace)
            existing = {kind: listed.get((kind, child[key])) for kind, key in kinds.items()}
            existing["Deployment"] = deployment.essence() if deployment is not None else None
        else:
            found = await asyncio.gather(*(self.kube.get(kind, namespace, child[key]) for kind, key in kinds.items()))
            existing = dict(zip(kinds, found, strict=True))
        # Decide: what they should be (the Redis password stays the one the Secret holds, or the one we made).
        password = secret_value(existing["Secret"], "password") or mem.password or redis_io.new_password()
        mem.password = password
        old = existing["Deployment"]
        desired = mem.cached(
            "desired",
            None if spec is None else (spec, password, scale_of(old)),
            lambda: desired_children(agent, password, self.child_settings, old),
        )
        # Act: the Redis user, then each child in order; a Deployment that cannot be built keeps the old one.
        await redis_io.ensure_acl_user(
            self.redis,
            namespace,
            name,
            password,
            max_bytes=self.settings.max_payload_bytes,
            a2a=children.a2a_port(agent) is not None,
        )
        outcomes = {kind: await self.kube.ensure(m, existing[kind]) for kind, m in desired.manifests.items()}
        if desired.error is not None:
            self._set_error(body, mem, desired.error)
            return deployment
        if mem.error is not None:
            self.event(body, "Normal", "SpecAccepted", "the spec is valid again; rolling it out")
        mem.error = None
        for event in apply_events(outcomes, namespace, name, agent.spec.replicas):
            self.event(body, *event)
        applied = desired.manifests["Deployment"]
        return deployment or DeploymentView(spec_replicas=int(applied["spec"]["replicas"]), replicas=0, ready=0)

    async def _children(self, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The namespace's children, listed at most once per ``snapshot_seconds`` (concurrent callers share one
        list). A view a few seconds old is fine here: a child it misses or shows outdated is applied again, which
        server-side apply makes harmless."""
        now = time.monotonic()
        taken = self._snapshots.get(namespace)
        if (
            taken is None
            or now - taken[0] > self.snapshot_seconds
            or (taken[1].done() and (taken[1].cancelled() or taken[1].exception() is not None))
        ):
            taken = (now, asyncio.ensure_future(self.kube.children(namespace)))
            self._snapshots[namespace] = taken
        return await asyncio.shield(taken[1])

    def _set_error(self, body: dict[str, Any], mem: Memory, message: str) -> None:
        if mem.error != message:
            self.event(body, "Warning", "InvalidSpec", message)
        mem.error = message

    async def observe(
        self,
        body: dict[str, Any],
        deployment: DeploymentView | None,
        pods: Iterable[PodView],
        *,
        terminating: bool = False,
    ) -> dict[str, Any]:
        """Judge health, restart lapsed replicas, step the breaker and patch status if anything changed.

        Read (the indexes' workload, the Agent's Redis-side runtime) -> decide (health report) -> act (restart
        lapsed replicas; their count feeds the breaker) -> decide (breaker, status, events) -> act (events,
        autoscaling, status patch, metrics).
        """
        meta, spec = body["metadata"], body.get("spec") or {}
        namespace, name = meta["namespace"], meta["name"]
        old = dict(body.get("status") or {})
        mem = self.remember(namespace, name)
        pods = list(pods)
        desired = deployment.spec_replicas if deployment else int(spec.get("replicas", 1))
        scaling = _autoscaling(spec)
        runtime = None
        # Read at zero replicas too: an autoscaled agent's backlog is what wakes it, and its breaker and stats stay.
        try:
            runtime = await redis_io.read_runtime(self.redis, namespace, name, _targets(spec))
            if not runtime.heartbeats and (desired > 0 or runtime.backlog) and not terminating:
                await self._restore_lost_user(namespace, name, mem)
        except (OSError, aioredis.RedisError) as e:
            log.warning("cannot read %s/%s heartbeats from Redis: %s", namespace, name, e)
        now = runtime.now if runtime else time.time()
        lease = self.settings.heartbeat_lease_seconds
        concurrency = int(spec.get("concurrency", 4))
        report = evaluate(
            pods,
            runtime.heartbeats if runtime else None,
            now=now,
            lease_seconds=lease,
            startup_grace_seconds=self.settings.startup_grace_seconds,
            concurrency=concurrency,
        )
        failures = await self._restart_lapsed(body, mem, report.lapsed, now)
        failures += self._count_crashes(body, mem, pods)
        breaker = runtime.breaker if runtime else breaker_from_status(old)
        obs = Observed(
            desired=desired,
            replicas=deployment.replicas if deployment else 0,
            ready=report.ready,
            health=report,
            breaker=breaker,
            error=mem.error,
            maintenance=bool(spec.get("maintenance", False)),
            terminating=terminating,
            replica_failed=failures > 0,
            autoscaled=scaling is not None,
            workload=deployment is not None,
            stuck=agent_status.stuck(pods, namespace, report.ready, now, report.problems) if desired > 0 else None,
            backend_back=desired > 0
            and report.heartbeats_known
            and agent_status.backend_recovering(find(old.get("conditions"), "Available"), report.problems, now),
        )
        status = agent_status.status(
            obs, selector=children.selector_string(name), generation=meta.get("generation"), old=old, now=now
        )
        if runtime and runtime.stats is not None:
            status["stats"] = runtime.stats
        if scaling is not None:
            auto = await self._autoscale(
                body, mem, scaling, runtime, old, terminating=terminating, stuck=obs.stuck is not None
            )
            if auto is not None:
                status["autoscaling"] = auto
        elif old.get("autoscaling") is not None:
            status["autoscaling"] = None  # autoscaling was switched off: the merge patch removes the block
            mem.autoscale_window, mem.autoscale_desired, mem.last_scale_time = None, None, None
            metrics.forget_autoscaler(namespace, name)
        for event in status_events(old, status):
            self.event(body, *event)
        if status_changed(old, status):
            await self.kube.patch_status("agents", namespace, name, status)
        self.phases[(namespace, name)] = status["phase"]
        self.publish_phases()
        state = BreakerState(breaker.state if breaker is not None else BreakerState.closed.value)
        metrics.BREAKER.labels(namespace, name).set(metrics.BREAKER_VALUE[state.value])
        if runtime and runtime.backlog is not None:
            metrics.QUEUE_DEPTH.labels(namespace, name).set(runtime.backlog)
        if runtime:
            metrics.DEAD_LETTERS.labels(namespace, name).set(runtime.dead_letters)
        return status

    async def _autoscale(
        self,
        body: dict[str, Any],
        mem: Memory,
        scaling: Autoscaling,
        runtime: redis_io.AgentRuntime | None,
        old: dict[str, Any],
        *,
        terminating: bool,
        stuck: bool = False,
    ) -> dict[str, Any] | None:
        """One autoscaler round: decide from the backlog, patch agents/scale if the count changes; the status block.
        ``stuck``: no replica is ready and none will be by waiting (the Available condition): no scale-up.

        Without a backlog reading (Redis unreachable) it decides nothing and keeps the last status block.
        """
        meta, spec = body["metadata"], body.get("spec") or {}
        namespace, name = meta["namespace"], meta["name"]
        if runtime is None or runtime.backlog is None:
            return None
        previous = old.get("autoscaling") or {}
        if mem.autoscale_window is None:
            mem.last_scale_time = previous.get("lastScaleTime")
        current = int(spec.get("replicas", 1))
        generation = int(meta.get("generation") or 0)
        paused = terminating or mem.error is not None or bool(spec.get("maintenance", False))
        if paused or generation < mem.scaled_to_generation:
            # Draining or deleting: leave the count alone. A body older than our own last scale would only make
            # us undo it (and announce it twice).
            desired = current if paused or mem.autoscale_desired is None else mem.autoscale_desired
            return _autoscaling_status(runtime.backlog, desired, mem.last_scale_time)
        if mem.autoscale_window is None:
            # After an operator restart, the last decision counts as this round's: no scale-down before the delay.
            seeded = previous.get("desiredReplicas")
            mem.autoscale_window = ((runtime.now, int(seeded)),) if seeded is not None else ()
        policy = autoscale.Policy.of(scaling)
        decision = autoscale.decide(mem.autoscale_window, runtime.now, runtime.backlog, current, policy, stuck=stuck)
        mem.autoscale_window, mem.autoscale_desired = decision.window, decision.desired
        metrics.DESIRED_REPLICAS.labels(namespace, name).set(decision.desired)
        if decision.desired != current and await self._patch_scale(mem, namespace, name, generation, decision.desired):
            mem.last_scale_time = now_rfc3339(runtime.now)
            reason = "ScaledUp" if decision.desired > current else "ScaledDown"
            self.event(
                body,
                "Normal",
                reason,
                f"backlog {runtime.backlog} (target {policy.target_backlog_per_replica}/replica): "
                f"replicas {current} -> {decision.desired}",
            )
        return _autoscaling_status(runtime.backlog, decision.desired, mem.last_scale_time)

    async def _patch_scale(self, mem: Memory, namespace: str, name: str, generation: int, replicas: int) -> bool:
        # Marked before the await: an overlapping round holding the same (now stale) body must not scale again.
        before, mem.scaled_to_generation = mem.scaled_to_generation, generation + 1
        try:
            patched = await self.kube.patch_scale("agents", namespace, name, replicas)
        except BaseException:
            mem.scaled_to_generation = before
            raise
        if not patched:
            mem.scaled_to_generation = before
        return patched

    async def _restart_lapsed(self, body: dict[str, Any], mem: Memory, lapsed: list[str], now: float) -> int:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        restarted = 0
        for pod in lapsed:
            if now - mem.deleted.get(pod, 0.0) < 30:
                continue  # already deleting it; the watch has not caught up
            self.event(body, "Warning", "HeartbeatLost", f"replica {pod} stopped heartbeating while its pod runs")
            if await self.kube.delete_pod(namespace, pod):
                mem.deleted[pod] = now
                restarted += 1
                metrics.RESTARTS.labels(namespace, name).inc()
                # Its in-flight tasks are reclaimed by the surviving (or replacement) replicas once its lease
                # has lapsed: the bus's reclaim script moves them with XCLAIM, so nothing is lost with the pod.
                self.event(body, "Normal", "ReplicaRestarted", f"deleted pod {pod}; its tasks will be reclaimed")
        for pod, at in list(mem.deleted.items()):
            if now - at > 300:
                del mem.deleted[pod]
        return restarted

    def _count_crashes(self, body: dict[str, Any], mem: Memory, pods: list[PodView]) -> int:
        crashes = 0
        seen = {}
        for pod in pods:
            seen[pod.name] = pod.restarts
            previous = mem.restart_counts.get(pod.name)
            if previous is not None and pod.restarts > previous:
                crashes += pod.restarts - previous
                self.event(body, "Warning", "ReplicaCrashed", f"replica {pod.name} restarted ({pod.restarts} total)")
        mem.restart_counts = seen
        return crashes

    async def delete(self, body: dict[str, Any]) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        removed = await redis_io.delete_acl_user(self.redis, namespace, name)
        await purge_agent(self.redis, namespace, name)
        if removed:
            self.event(
                body, "Normal", "RedisUserDeleted", f"removed Redis user {children.redis_username(namespace, name)}"
            )
        self.memory.pop((namespace, name), None)
        self.phases.pop((namespace, name), None)
        self.publish_phases()
        metrics.forget_agent(namespace, name)

    def publish_phases(self) -> None:
        counts = dict.fromkeys((p.value for p in AgentPhase), 0)
        for phase in self.phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            metrics.AGENTS.labels(phase).set(count)

    async def _restore_lost_user(self, namespace: str, name: str, mem: Memory) -> None:
        """No replica has a heartbeat though some should: if the agent's Redis user is gone (Redis restarted
        without an ACL file, or was flushed), its replicas cannot log in until the next apply restores it. Make that
        the next health round's, not the periodic resync's (minutes away, every run waiting on the agent failing
        meanwhile). Only checked while no replica beats: a replica that beats has logged in."""
        if not await redis_io.acl_user_exists(self.redis, namespace, name):
            log.warning("%s/%s: its Redis user is gone (Redis restarted or was flushed): re-applying", namespace, name)
            mem.last_apply = -math.inf

    def due_for_apply(self, namespace: str, name: str, *, deployment_seen: bool) -> bool:
        """For the health round: the periodic resync (drift, a Redis user lost with a restart), or a Deployment
        still missing from the watch-fed index well after the last apply began (deleted by hand, or that apply
        failed). Not one whose creation is under way: two thousand Agents applied at once had their timers apply
        each again (and list the namespace's children for it) while their first apply was still going."""
        since = time.monotonic() - self.remember(namespace, name).last_apply
        return since >= self.settings.resync_seconds or (not deployment_seen and since >= MISSING_DEPLOYMENT_SECONDS)


def _autoscaling(spec: dict[str, Any]) -> Autoscaling | None:
    raw = spec.get("autoscaling")
    if raw is None:
        return None
    try:
        return Autoscaling.model_validate(raw)
    except ValidationError as e:  # the CRD rejects this; an older CRD might not
        log.warning("ignoring invalid spec.autoscaling: %s", "; ".join(explain(e)))
        return None


def _targets(spec: dict[str, Any]) -> PerformanceTargets:
    try:
        return PerformanceTargets.model_validate(spec.get("performance") or {})
    except ValidationError:  # the CRD rejects this; an older CRD might not
        return PerformanceTargets()


def _autoscaling_status(backlog: int, desired: int, last_scale: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"backlog": backlog, "desiredReplicas": desired}
    if last_scale is not None:
        out["lastScaleTime"] = last_scale
    return out
