"""One Orchestration's life in the operator: wait for its agents, run the engine, report, stop on request.

The kopf daemon (``orchestrations/handlers.py``) calls :func:`drive` with the live object. Restarting the
operator calls it again for a Running orchestration: the engine's journal replays finished steps and
re-attaches to in-flight ones, so no task runs twice. A run goes on with the spec it started with (pinned in Redis
at its start): an edit made while it runs, or before a replica takes it up again, earns a ``SpecIgnored``
condition (:func:`edit_ignored`) but for ``spec.suspend``, which it follows, and ``spec.limits``, which apply from
then on (:func:`limits_edit`; pinned again, so a run taken up again keeps them). Until it starts, a Pending run reads
the spec again at every look, so fixing a name it waits for starts it. Succeeded and Failed are terminal: a
finished run is never started again (a later spec change only earns ``SpecIgnored``, see :func:`ignored_change`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from podium import telemetry
from podium.api.orchestration import Limits, OrchestrationSpec
from podium.api.validation import explain
from podium.dataplane import runs
from podium.dataplane.approvals import ApprovalStore
from podium.dataplane.bus import Bus
from podium.dataplane.purge import purge_orchestration
from podium.engine.budget import LiveLimits
from podium.engine.kept import Kept
from podium.engine.progress import Progress
from podium.engine.runner import FAILED, RunOutcome, run_orchestration
from podium.operator import metrics
from podium.operator.conditions import Cond, merge, now_rfc3339, parse_rfc3339
from podium.operator.kube import Kube, describe_error
from podium.operator.orchestrations import approvals as approvals_mod
from podium.operator.orchestrations import directory as directory_mod
from podium.operator.orchestrations import status as st

PLURAL = "orchestrations"
Runner = Callable[..., Coroutine[Any, Any, RunOutcome]]
PostEvent = Callable[[str, str, str], None]  # type ("Normal"|"Warning"), reason, message


@dataclass
class Deps:
    kube: Kube
    redis: aioredis.Redis
    post_event: PostEvent
    status_interval: float = 1.0  # at most one progress patch per interval
    poll_seconds: float = 2.0  # how often a Pending run re-checks its agents, and suspend is watched
    retry_seconds: float = 5.0  # after an unexpected error (Redis or the API server away), try again
    snapshots: directory_mod.Snapshots | None = None  # shared by this replica's runs; None: each run lists
    bus: Bus | None = None  # shared by this replica's runs (one result reader for all); None: each run has its own
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("podium.orchestrations"))

    async def agents_and_teams(self, namespace: str, *, current: bool = False) -> directory_mod.Snapshot:
        """The namespace's Agents and Teams: the replica's shared snapshot (up to a second old, from the API
        server's watch cache), or with ``current`` a read of what the API server has stored now."""
        if self.snapshots is not None and not current:
            return await self.snapshots.fetch(namespace)
        return await directory_mod.fetch(self.kube, namespace)

    async def directory(self, namespace: str) -> directory_mod.AgentDirectory:
        """:meth:`agents_and_teams` (shared) as a directory, built once per snapshot where the runs share one."""
        if self.snapshots is not None:
            return await self.snapshots.directory(namespace)
        return directory_mod.build(await self.agents_and_teams(namespace))


class Stopped(Exception):
    """kopf asked the daemon to stop (operator exit or the Orchestration's deletion)."""


Stop = Callable[[], bool]


class Controller:
    """State of one drive: the live object, the status writer, the conditions written so far."""

    def __init__(self, deps: Deps, body: Mapping[str, Any], stopping: Stop) -> None:
        meta = body["metadata"]
        self.deps, self.body, self.stopping = deps, body, stopping
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        status = dict(body.get("status") or {})
        self.phase: str | None = status.get("phase")
        self.conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
        self.started_at: str | None = status.get("startedAt")
        self.writer = st.StatusWriter(self._patch, deps.status_interval)
        self.failed_steps: set[str] = set()
        self.progress: Progress | None = None
        # Approval states already announced (status.approvals survives a restart: no Event is posted twice).
        self.approval_states = {a["step"]: a["state"] for a in status.get("approvals") or [] if "step" in a}
        self.waiting: list[str] = []  # agents the engine waits for to come up (condition Waiting)
        self.waits_told: set[str] = set()  # the waits an Event said already: once each, however often they come back
        self.pinned: dict[str, Any] | None = None  # the spec (wire form) the run started with, once it has
        self.limits: LiveLimits | None = None  # the running engine's limits, while it runs
        self.ignored = ""  # why the spec as it is now is not the run's (condition SpecIgnored), "" when it is
        self._shown: tuple[str, str, str, bool] | None = None  # the phase last set: re-shown when waiting changes

    # ------------------------------------------------------------------ live object
    @property
    def generation(self) -> int | None:
        value = self.body["metadata"].get("generation")
        return int(value) if value is not None else None

    def suspended(self) -> bool:
        return bool((self.body.get("spec") or {}).get("suspend"))

    async def _patch(self, fields: dict[str, Any]) -> None:
        await self.deps.kube.patch_status(PLURAL, self.namespace, self.name, fields)

    def event(self, type_: str, reason: str, message: str) -> None:
        try:
            self.deps.post_event(type_, reason, message[:1024])
        except Exception as e:  # an event is a courtesy; it must never stop a run
            self.deps.logger.warning("event %s not posted: %s", reason, e)

    # ------------------------------------------------------------------ status
    def set_phase(self, phase: str, reason: str, message: str, *, degraded: bool = False) -> None:
        fields = st.phase_fields(
            phase,
            reason,
            message,
            generation=self.generation,
            old_conditions=self.conditions,
            degraded=degraded,
            waiting=self.waiting,
            ignored=self.ignored,
        )
        self.conditions = fields["conditions"]
        self.phase = phase
        self._shown = (phase, reason, message, degraded)
        self.writer.stage(fields)

    async def on_progress(self, progress: Progress) -> None:
        self.progress = progress
        self.writer.stage(st.progress_fields(progress))
        if progress.waiting != self.waiting:
            self.waiting = list(progress.waiting)
            self._reshow()
            said = st.wait_event(self.waits_told, self.waiting)
            if said is not None:
                self.event("Normal", "WaitingForAgent", said)
        for record in progress.tasks:
            if record.state == "Failed" and record.step not in self.failed_steps:
                self.failed_steps.add(record.step)
                self.event("Warning", "StepFailed", f"step {record.step} failed: {record.error or 'no detail'}")
        if progress.approvals or self.phase == st.AWAITING:
            await self.on_approvals(progress.approvals)

    def _reshow(self) -> None:
        """The phase last set, staged again: a condition beside it (Waiting, SpecIgnored) changed."""
        if self._shown is not None:
            phase, reason, message, degraded = self._shown
            self.set_phase(phase, reason, message, degraded=degraded)

    async def on_approvals(self, records: list[Any]) -> None:
        """status.approvals, Events and metrics for each new state, and phase AwaitingApproval while one waits."""
        self.writer.stage(st.approvals_fields(records))
        for kind, reason, message, state in st.approval_events(self.approval_states, records):
            self.event(kind, reason, message)
            if state != "Waiting":
                metrics.approval_decided(self.namespace, state)
        waiting = [r.step for r in records if r.state == "Waiting"]
        metrics.approvals_waiting(self.namespace, self.name, len(waiting))
        if waiting:
            message = st.waiting_message(self.namespace, self.name, waiting)
            if self.phase != st.AWAITING or self.conditions_message() != message:
                self.set_phase(st.AWAITING, "ApprovalRequired", message)
                await self.writer.flush()
        elif self.phase == st.AWAITING:
            if self.suspended():
                self.set_phase(st.SUSPENDED, "Suspended", "spec.suspend is true: no new tasks are dispatched")
            else:
                self.set_phase(st.RUNNING, "Running", "approved: the run goes on")
            await self.writer.flush()

    def conditions_message(self) -> str:
        found = next((c for c in self.conditions if c.get("type") == "AwaitingApproval"), None)
        return str(found.get("message", "")) if found else ""

    async def finish(self, outcome: RunOutcome) -> None:
        fields = st.outcome_fields(
            outcome, self.progress, generation=self.generation, old_conditions=self.conditions, ignored=self.ignored
        )
        key = runs.result_key(self.namespace, self.name, self.uid)
        result, encoded = st.result_fields(outcome.result, key)
        if encoded is not None:
            await runs.store_result(self.deps.redis, key, encoded)
        self.conditions = fields["conditions"]
        self.phase = outcome.phase
        self.writer.stage(fields | result | {"startedAt": self.started_at})
        await self.writer.flush()
        metrics.approvals_waiting(self.namespace, self.name, 0)
        self._count(outcome.phase, outcome.reason)
        metrics.run_spent(self.namespace, self._strategy(), outcome.cost, outcome.tokens)
        if outcome.degraded:
            self.event("Warning", "Degraded", "; ".join(outcome.notes) or outcome.message)
        if outcome.phase == FAILED:
            self.event("Warning", "Failed", f"{outcome.reason}: {outcome.message}")
        else:
            self.event("Normal", "Succeeded", f"{outcome.reason}: {len(outcome.tasks)} tasks, cost {outcome.cost:.4f}")
        if outcome.withdrawn:
            taken = ", ".join(f"{n} from {agent}" for agent, n in sorted(outcome.withdrawn.items()))
            why = "queued tasks taken back (the run stopped waiting for them)"
            self.event("Normal", "TasksWithdrawn", f"{why}: {taken}")

    async def fail(self, reason: str, message: str) -> None:
        self.set_phase(FAILED, reason, message)
        self.writer.stage({"completedAt": now_rfc3339()})
        await self.writer.flush()
        self._count(FAILED, reason)
        self.event("Warning", "Failed", f"{reason}: {message}")

    def _strategy(self) -> str:
        # The strategy is a CRD enum, so the label stays bounded even for a spec that failed later checks.
        return str((self.body.get("spec") or {}).get("strategy") or "unknown")

    def _count(self, phase: str, reason: str) -> None:
        started = parse_rfc3339(self.started_at)
        seconds = None if started is None else time.time() - started
        metrics.run_finished(self.namespace, self._strategy(), phase, reason, seconds)

    # ------------------------------------------------------------------ waiting
    async def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stopping():
                raise Stopped
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def pending_for(self) -> float:
        created = parse_rfc3339(self.body["metadata"].get("creationTimestamp"))
        return 0.0 if created is None else max(0.0, time.time() - created)

    async def wait_until_startable(self) -> directory_mod.AgentDirectory | None:
        """Pending (or Suspended) until the run's teams and agents are there; None: it gave up (Failed). The spec
        is read again at every look: an edit made while the run waits (a misspelt Agent fixed) is the one that
        starts."""
        last: tuple[str, str] | None = None
        while True:
            spec, problem = parse_spec(self.body)
            if spec is None:
                await self.fail("InvalidSpec", problem)
                return None
            snapshot = await self.deps.agents_and_teams(self.namespace)
            directory = directory_mod.build(snapshot)
            ready = directory_mod.readiness(spec, directory)
            if ready.ok and not self.suspended():
                # The run starts from what is stored now: Agents applied with it (one `kubectl apply -f`) may be
                # missing from a shared snapshot still, and a run must not fail naming an Agent that exists.
                return directory_mod.build(await self.deps.agents_and_teams(self.namespace, current=True))
            reason, message = (
                ("Suspended", "spec.suspend is true: the run starts once it is false")
                if ready.ok
                else (ready.reason, ready.message)
            )
            if self.pending_for() > spec.limits.timeout_seconds and not ready.ok:
                await self.fail(ready.reason, f"gave up after limits.timeoutSeconds: {ready.message}")
                return None
            if (reason, message) != last:
                self.set_phase(st.SUSPENDED if ready.ok else st.PENDING, reason, message)
                await self.writer.flush()
                last = (reason, message)
            await self.sleep(self.deps.poll_seconds)

    async def pin(self) -> OrchestrationSpec | None:
        """The spec the run started with: pinned in Redis when it starts (the spec as it is now) and read back when
        it is taken up again, kept here across retries (a Redis back without its data gets it again); None when it
        is invalid (the run failed)."""
        wanted = self.pinned if self.pinned is not None else dict(self.body.get("spec") or {})
        self.pinned = await runs.pin_spec(self.deps.redis, self.namespace, self.name, self.uid, wanted)
        spec, problem = parse_spec({"spec": self.pinned})
        if spec is None:
            await self.fail("InvalidSpec", problem)
        return spec

    async def notice_edit(self) -> None:
        """An edit of spec.limits applied to the run; SpecIgnored while the rest of the spec as it is now differs
        from the run's, with a Warning Event once per edit."""
        now = self.body.get("spec") or {}
        if self.pinned is not None and self.limits is not None:
            await self._follow_limits(self.pinned, now, self.limits)
        ignored = edit_ignored(self.pinned or {}, now, self.generation)
        if ignored == self.ignored:
            return
        self.ignored = ignored
        if ignored:
            self.event("Warning", "SpecIgnored", ignored)
        self._reshow()
        await self.writer.flush()

    async def _follow_limits(self, pinned: dict[str, Any], now: Mapping[str, Any], live: LiveLimits) -> None:
        edited = limits_edit(pinned, now)
        if edited is None:
            return
        limits, wire = edited
        repinned = {k: v for k, v in pinned.items() if k != "limits"} | ({"limits": wire} if wire is not None else {})
        try:  # pinned first: a run taken up again after this keeps the limits it now runs under
            await runs.repin_spec(self.deps.redis, self.namespace, self.name, self.uid, repinned)
        except RedisError as e:  # tried again at the next look
            self.deps.logger.warning("spec.limits edited, but not pinned yet (Redis: %s); trying again", e)
            return
        self.pinned = repinned
        before = live.limits
        if not live.set(limits):  # the same limits, written another way ({} for none)
            return
        self.event("Normal", "LimitsChanged", f"spec.limits edited while the run runs: {changes(before, limits)}")
        self._reshow()  # the conditions now observe this generation
        await self.writer.flush()

    async def watch_spec(self) -> None:
        """While the engine runs: spec.suspend in the phase (the engine itself holds dispatch), spec.limits handed to
        the engine, and any other edit noted as ignored."""
        was = self.suspended()
        while True:
            await self.notice_edit()
            await asyncio.sleep(min(self.deps.poll_seconds, 0.5))
            now = self.suspended()
            if now == was:
                continue
            was = now
            if self.phase == st.AWAITING:
                continue  # the approval wait decides the phase; it says Suspended or Running once it ends
            if now:
                self.set_phase(st.SUSPENDED, "Suspended", "spec.suspend is true: no new tasks are dispatched")
                self.event("Normal", "Suspended", "dispatch paused; in-flight tasks finish")
            else:
                self.set_phase(st.RUNNING, "Running", "resumed")
                self.event("Normal", "Resumed", "dispatch resumed")
            await self.writer.flush()


def parse_spec(body: Mapping[str, Any]) -> tuple[OrchestrationSpec | None, str]:
    try:
        return OrchestrationSpec.model_validate(dict(body.get("spec") or {})), ""
    except ValidationError as e:
        return None, "invalid Orchestration: " + "; ".join(explain(e))


async def drive(
    deps: Deps,
    body: Mapping[str, Any],
    stopping: Stop,
    *,
    run: Runner = run_orchestration,
) -> None:
    """Run one Orchestration to its end, or until ``stopping()``; returns at once for a finished one."""
    ctl = Controller(deps, body, stopping)
    if ctl.phase in st.TERMINAL:
        return
    ctl.writer.start()
    try:
        await _drive(ctl, run)
    except Stopped:
        pass
    finally:
        try:
            await ctl.writer.close()
        except Exception as e:
            deps.logger.warning("final status patch failed: %s", e)


async def _drive(ctl: Controller, run: Runner) -> None:
    # Why a run that started before is taken up again (None: it had not started): the Event says so.
    resumed = (
        "by this operator (an operator restart, or runs taken over from another replica)"
        if (ctl.phase in st.ACTIVE and ctl.started_at is not None)
        else None
    )
    kept = Kept()  # what the run wrote, across the retries below: a Redis back without its data gets it back
    while True:
        try:
            if resumed:
                # Started before a restart: its agents were there; the engine copes with any that went away.
                directory = await ctl.deps.directory(ctl.namespace)
            else:
                found = await ctl.wait_until_startable()
                if found is None:
                    return
                directory = found
            spec = await ctl.pin()
            if spec is None:
                return
            await _run_once(ctl, spec, directory, resumed, run, kept)
            return
        except (Stopped, asyncio.CancelledError):
            raise
        except Exception as e:
            # Redis or the API server away: say so and try again; the journal makes the re-run safe.
            ctl.deps.logger.warning("orchestration run interrupted, retrying: %s", e, exc_info=True)
            ctl.event("Warning", "RunError", f"{describe_error(e)}; retrying")
            ctl.writer.stage({"message": f"retrying after error: {describe_error(e)}"[: st.MAX_MESSAGE]})
            resumed = "after an error" if ctl.started_at is not None else None
            await ctl.sleep(ctl.deps.retry_seconds)


async def _run_once(
    ctl: Controller,
    spec: OrchestrationSpec,
    directory: directory_mod.AgentDirectory,
    resumed: str | None,
    run: Runner,
    kept: Kept,
) -> None:
    if ctl.started_at is None:
        ctl.started_at = now_rfc3339()
        trace = telemetry.run_trace_id(ctl.uid)  # so that `kubectl describe` leads to the run's trace
        ctl.event("Normal", "Started", f"{spec.strategy} run started" + (f", trace {trace}" if trace else ""))
    elif resumed:
        ctl.event("Normal", "Continued", f"taken up again {resumed}: the run continues from its journal")
    if ctl.phase == st.AWAITING:
        pass  # still waiting for a person: the engine says so again once it reaches the step (or moves on)
    elif ctl.suspended():
        ctl.set_phase(st.SUSPENDED, "Suspended", "spec.suspend is true: no new tasks are dispatched")
    else:
        ctl.set_phase(st.RUNNING, "Running", f"{spec.strategy} run in progress")
    ctl.writer.stage({"startedAt": ctl.started_at})
    await ctl.writer.flush()

    async def is_suspended() -> bool:
        return ctl.suspended()

    async def agents() -> directory_mod.AgentDirectory:
        # The replica's shared view (at most a second old, from the API server's watch cache): every run refreshes
        # its view every couple of seconds while it dispatches, and 200 runs each listing Agents and Teams from etcd
        # made 200 LISTs a second, each parsed and validated again.
        return await ctl.deps.directory(ctl.namespace)

    strategy = str(spec.strategy)

    def on_event(type_: str, payload: Any) -> None:
        metrics.run_event(ctl.namespace, strategy, type_)
        lost = st.data_loss_event(type_, payload)
        if lost is not None:
            ctl.event("Warning", *lost)

    ctl.limits = LiveLimits(spec.limits)  # an edit of spec.limits reaches the engine through it (notice_edit)
    engine: asyncio.Task[RunOutcome] = asyncio.create_task(
        run(
            ctl.deps.redis,
            directory,
            ctl.namespace,
            ctl.name,
            ctl.uid,
            spec,
            ctl.on_progress,
            is_suspended=is_suspended,
            agents=agents,
            on_event=on_event,
            bus=ctl.deps.bus,
            kept=kept,
            limits=ctl.limits,
        ),
        name=f"orchestration {ctl.namespace}/{ctl.name}",
    )
    watcher = asyncio.create_task(ctl.watch_spec())
    decisions = asyncio.create_task(
        approvals_mod.follow(
            ApprovalStore(ctl.deps.redis, ctl.namespace, ctl.name, ctl.uid),
            lambda: approvals_mod.annotations_of(ctl.body),
            time.time,
            min(ctl.deps.poll_seconds, 0.5),
        )
    )
    try:
        while not engine.done():
            if ctl.stopping():
                raise Stopped
            if decisions.done() and decisions.exception() is not None:
                raise decisions.exception()  # type: ignore[misc]  # Redis away: the retry loop starts over
            await asyncio.wait({engine}, timeout=0.2)
        outcome = engine.result()
    finally:
        watcher.cancel()
        decisions.cancel()
        if not engine.done():
            engine.cancel()
        await asyncio.gather(engine, watcher, decisions, return_exceptions=True)
        ctl.limits = None
    await ctl.finish(outcome)


FOLLOWED = ("suspend", "limits")  # what a running run follows of an edit of its spec


def edit_ignored(started: Mapping[str, Any], now: Mapping[str, Any], generation: int | None) -> str:
    """Why a started run ignores its spec as it is ``now`` ("" when that is the spec it ``started`` with, but for
    spec.suspend and spec.limits, which a run follows)."""
    if {k: v for k, v in started.items() if k not in FOLLOWED} == {k: v for k, v in now.items() if k not in FOLLOWED}:
        return ""
    return (
        f"the spec changed after the run started (generation {generation}): the run goes on with the spec it started "
        "with and follows only spec.suspend and spec.limits; to run the new spec, create a new Orchestration (or "
        "delete and re-apply this one)"
    )


def limits_edit(started: Mapping[str, Any], now: Mapping[str, Any]) -> tuple[Limits, Any] | None:
    """The limits a running run goes on with when ``now`` edits those it ``started`` (or was last given) with, and
    their wire form; None when they are the same (or the edit is not valid limits: the API server refuses those)."""
    wire = now.get("limits")
    if wire == started.get("limits"):
        return None
    try:
        return Limits.model_validate(wire or {}), wire
    except ValidationError:
        return None


def changes(before: Limits, after: Limits) -> str:
    """What an edit of the limits changed, as "timeoutSeconds 3600 -> 60, maxTasks 100 -> 3"."""
    old, new = before.model_dump(by_alias=True), after.model_dump(by_alias=True)
    return ", ".join(f"{k} {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v)


def ignored_change(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """Status for a spec change after the run finished (runs are immutable), or None when it needs none."""
    status = dict(body.get("status") or {})
    if status.get("phase") not in st.TERMINAL:
        return None
    generation = body["metadata"].get("generation")
    if generation is None or status.get("observedGeneration") == generation:
        return None
    cond = Cond(
        "SpecIgnored",
        True,
        "RunFinished",
        f"the run already {status['phase'].lower()}; runs are immutable: create a new Orchestration to run again",
    )
    kept = [c for c in status.get("conditions") or [] if c.get("type") != "SpecIgnored"]
    return {"conditions": kept + merge(status.get("conditions"), [cond], generation), "observedGeneration": generation}


async def cleanup(
    redis: aioredis.Redis, namespace: str, name: str, uid: str | None = None, agents: Iterable[str] = ()
) -> tuple[int, dict[str, int]]:
    """After deletion: the run's queued tasks are cancelled on every agent it dispatched to (from its journal)
    and on ``agents`` (the namespace's, for tasks the journal may not show yet), then the journal, budget,
    events, state and stored results go. Returns (keys purged, queued tasks removed by agent).

    With ``uid`` only that run's tasks are cancelled, so a re-applied Orchestration of the same name runs.
    Safe to call twice: the cancel mark is idempotent and a second purge finds little.
    """
    targets = await runs.journal_agents(redis, namespace, name) | set(agents)
    bus = Bus(redis)
    try:
        removed = await bus.cancel(f"{namespace}/{name}", targets, uid)
    finally:
        await bus.close()
    return await purge_orchestration(redis, namespace, name), removed
