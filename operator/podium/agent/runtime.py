"""The agent loop: fetch tasks from the inbox, run them through the backend within limits, report results,
heartbeat, and drain on SIGTERM or maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from podium.agent import defaults, sdk, tracing
from podium.agent.backends import Backend, BackendError, BackendOutput, build_backend
from podium.agent.backends.base import (
    TASK_DEADLINE,
    TASK_TOOL_CALLS,
    BudgetSpent,
    InvalidOutput,
    Probed,
    Refused,
    Throttled,
    Unreachable,
)
from podium.agent.config import ConfigError, RuntimeConfig, parse_spec
from podium.agent.health import Health
from podium.agent.http import ProbeServer
from podium.agent.memory import TASK_MEMORY, MemoryKeeper
from podium.agent.metrics import AgentMetrics
from podium.agent.pricing import task_cost
from podium.api.agent import AgentSpec
from podium.api.json_schema import first_error
from podium.api.memory import Memory
from podium.dataplane.bus import Bus
from podium.dataplane.collab import InvalidEffects, context_versions, parse_messages, parse_state_updates
from podium.dataplane.connection import connect
from podium.dataplane.consumer import InboxConsumer
from podium.dataplane.messages import BUDGET_SPENT, INVALID_OUTPUT, REFUSED, THROTTLED, Result, Task
from podium.dataplane.records import Delivery
from podium.dataplane.toolcalls import ToolCall

log = logging.getLogger("podium.agent")

FETCH_BLOCK_MS = 500  # also bounds how long SIGTERM waits for a blocked read
CONFIG_POLL_SECONDS = 1.0
TICK_SECONDS = 0.25
STORE_RETRY_CAP_SECONDS = 2.0  # longest pause between two tries to store a result
PROBE_SECONDS = 15.0  # how often a backend's upstream is asked whether it is up (and at once after a task found it
PROBE_DOWN_SECONDS = 2.0  # not); how often after a failed probe, so the replica takes work again soon after it is back
PROBE_FAILURES = 2  # failed probes in a row that make it down (one slow answer on a busy machine does not)
# Kinds the runtime can answer itself when the backend does not handle them.
DEFAULT_KINDS = frozenset({"bid"})


@dataclass(frozen=True)
class Outcome:
    result: Result
    label: str  # ok | error | timeout | throttled | invalid (the metrics label)
    usage: BackendOutput  # what the work used, also when it failed


def backend_problem(current: str | None, said: str | None, failed: int, *, first: bool = False) -> str | None:
    """Why the backend's upstream takes no requests after a probe that ``said`` so (None: it answered), the
    ``failed``-th in a row: one that answers clears it, PROBE_FAILURES in a row set it, fewer change nothing. The
    ``first`` probe of a replica sets it at once: an upstream never seen up is not having a slow moment."""
    if said is None:
        return None
    return said if first or failed >= PROBE_FAILURES else current


def effective_timeout(task: Task, spec: AgentSpec, backend_cap: int | None) -> float:
    """The task's own timeout, else the Agent's resilience timeout; the backend's own limit caps both."""
    limit = float(task.timeout_seconds or spec.resilience.timeout_seconds)
    return min(limit, float(backend_cap)) if backend_cap else limit


def checked(task: Task, out: BackendOutput) -> BackendOutput:
    """The answer, if it honours the schema the task carries (whichever backend gave it, or the runtime itself)."""
    if task.output_schema is not None:
        problem = first_error(task.output_schema, out.output)
        if problem is not None:
            raise InvalidOutput(f"the answer does not honour the task's output schema: {problem}", spent=out)
    return out


def effects(task: Task, out: BackendOutput, asked: sdk.Effects) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answer's state updates and messages (envelope first, then SDK calls), checked, each write with the
    version of its key the task was told as its base unless it named one."""
    try:
        updates = parse_state_updates(_listed(out.state_updates) + asked.state_updates, context_versions(task.context))
        messages = parse_messages(_listed(out.messages) + asked.messages)
    except InvalidEffects as exc:
        raise InvalidOutput(f"the answer's effects are malformed: {exc}", spent=out) from None
    return [u.to_wire() for u in updates], [m.to_wire() for m in messages]


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict):  # the {key: value} form of stateUpdates
        return [{"key": k, "value": v} for k, v in value.items()]
    if not isinstance(value, list):
        raise InvalidOutput(f"stateUpdates and messages must be lists, got {type(value).__name__}")
    return value


class AgentRuntime:
    def __init__(self, config: RuntimeConfig, backend: Backend | None = None) -> None:
        self.config = config
        self.spec = config.spec
        self.backend = backend or build_backend(config.spec)
        self.health = Health(stall_seconds=config.stall_seconds)
        self.metrics = AgentMetrics(config.agent, config.namespace)
        self.durations = defaults.RecentDurations()
        self.running: dict[str, asyncio.Task[None]] = {}
        self.slot_freed = asyncio.Event()
        self.stopping = asyncio.Event()
        self.backend_doubt = asyncio.Event()  # a task found the backend's upstream unreachable: probe it now
        self.maintenance = config.spec.maintenance
        self.left = False
        self.membership = asyncio.Lock()  # orders heartbeats against leave()
        self.config_digest = ""
        self.probes: ProbeServer | None = None
        self.redis: aioredis.Redis | None = None
        self.consumer: InboxConsumer | None = None
        self.a2a: Any = None  # podium.agent.a2a.server.A2AServer, with spec.a2a enabled
        self.memory: MemoryKeeper | None = None  # for backends that show the model its memory (llm)

    # -- controls (signal handlers call these) ------------------------------------------------------

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stop requested: draining", extra=self._who())
        self.health.draining = True
        self.stopping.set()

    def set_maintenance(self, on: bool, why: str) -> None:
        if on == self.maintenance:
            return
        self.maintenance = on
        self.health.maintenance = on
        log.info(f"maintenance {'on' if on else 'off'} ({why})", extra=self._who())
        self.slot_freed.set()

    def toggle_maintenance(self) -> None:
        self.set_maintenance(not self.maintenance, "SIGUSR1")

    # -- lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        cfg = self.config
        self.health.maintenance = self.maintenance
        try:
            self.config_digest = hashlib.sha256(cfg.config_path.read_bytes()).hexdigest()
        except OSError:
            self.config_digest = ""
        self.probes = ProbeServer(self.health, self.metrics.registry, cfg.http_host, cfg.http_port)
        try:
            self.probes.start()
        except OSError as exc:
            log.error(str(exc), extra=self._who())
            return 1
        try:
            try:
                await self.backend.start()
            except BackendError as exc:
                log.error(f"backend cannot start: {exc}", extra=self._who())
                return 1
            self.health.backend_ready = True
            # A probed backend takes nothing until its upstream answered once: a task fetched before that would
            # fail "cannot reach" on a model server that is down or still loading, spending a run's attempt.
            self.health.backend_checked = not isinstance(self.backend, Probed)
            self.redis = connect(cfg.redis_url, username=cfg.redis_username, password=cfg.redis_password)
            bus = Bus(self.redis, wait_replicas=cfg.wait_replicas)
            if getattr(self.backend, "uses_memory", False):
                self.memory = MemoryKeeper(self.redis, cfg.namespace, cfg.agent, self.spec.memory)
            self.consumer = bus.consumer(cfg.namespace, cfg.agent, cfg.replica, lease_seconds=cfg.lease_seconds)
            if not await self._start_a2a(bus):
                await bus.close()
                await self.redis.aclose()
                return 1
            log.info(
                f"serving {cfg.namespace}/{cfg.agent} with the {self.backend.name} backend, "
                f"concurrency {self.spec.concurrency}, probes on {cfg.http_host}:{self.probes.port}",
                extra=self._who(),
            )
            helpers = [
                asyncio.create_task(self._ticker(), name="ticker"),
                asyncio.create_task(self._heartbeats(), name="heartbeats"),
                asyncio.create_task(self._watch_config(), name="config-watch"),
            ]
            if isinstance(self.backend, Probed):
                helpers.append(asyncio.create_task(self._watch_backend(self.backend), name="backend-watch"))
            try:
                await self._fetch_loop()
                await self._drain()
            finally:
                if self.a2a is not None:
                    await self.a2a.stop()
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                await bus.close()
                await self.redis.aclose()
            log.info("stopped", extra=self._who())
            return 0
        finally:
            await self.backend.close()
            self.probes.stop()

    async def _start_a2a(self, bus: Bus) -> bool:
        """Serve A2A when spec.a2a is enabled (its messages become tasks in this Agent's inbox); False: cannot."""
        a2a = self.spec.a2a
        if a2a is None or not a2a.enabled:
            return True
        from podium.agent.a2a import A2AUnavailable, require

        try:
            require("server")
            from podium.agent.a2a.server import A2AServer, make_app

            app = make_app(lambda: self.spec, self.config.namespace, self.config.agent, bus)
            self.a2a = A2AServer(app, self.config.http_host, a2a.port, self.config.grace_seconds)
            await self.a2a.start()
        except (A2AUnavailable, OSError) as exc:
            log.error(f"spec.a2a: {exc}", extra=self._who())
            self.a2a = None
            return False
        log.info(f"serving A2A on {self.config.http_host}:{self.a2a.port}", extra=self._who())
        return True

    async def _fetch_loop(self) -> None:
        assert self.consumer is not None
        failures = 0
        while not self.stopping.is_set():
            self.slot_freed.clear()  # before looking, so a slot freed from here on wakes the wait below
            if self.maintenance:
                await self._leave_when_idle()
                await self._wait_slot(CONFIG_POLL_SECONDS)
                continue
            if self.health.backend_problem is not None or not self.health.backend_checked:
                # Tasks wait in the inbox: the runs see why and route (or wait for the first probe, a moment).
                await self._wait_slot(CONFIG_POLL_SECONDS)
                continue
            free = self.spec.concurrency - len(self.running)
            if free <= 0:
                await self._wait_slot(CONFIG_POLL_SECONDS)
                continue
            try:
                if self.left:
                    self.left = False  # back from maintenance: the next heartbeat re-registers the replica
                deliveries = await self.consumer.fetch(free, FETCH_BLOCK_MS)
                self.health.redis_ok = True
                failures = 0
            except (RedisError, OSError) as exc:
                failures += 1
                self.health.redis_ok = False
                log.warning(f"redis fetch failed ({failures} in a row): {exc}", extra=self._who())
                await self._sleep_or_stop(min(5.0, 0.2 * 2**failures))
                continue
            for delivery in deliveries:
                if self.stopping.is_set() or self.maintenance or self.health.backend_problem is not None:
                    await self._release(delivery)  # fetched but not started: another replica takes it soon
                else:
                    self._start(delivery)

    async def _drain(self) -> None:
        """Give in-flight tasks the grace period, hand back what is still running, then leave."""
        if self.running:
            log.info(f"waiting up to {self.config.grace_seconds:g}s for {len(self.running)} task(s)", extra=self._who())
            _, pending = await asyncio.wait(list(self.running.values()), timeout=self.config.grace_seconds)
            for job in pending:
                job.cancel()  # the handler releases its delivery
            if pending:
                await asyncio.wait(pending, timeout=5)
        await self._leave()

    async def _leave_when_idle(self) -> None:
        if not self.running and not self.left:
            await self._leave()

    async def _leave(self) -> None:
        assert self.consumer is not None
        async with self.membership:
            try:
                await self.consumer.leave()
                self.left = True
            except (RedisError, OSError) as exc:
                log.warning(f"could not leave cleanly (others reclaim after the lease): {exc}", extra=self._who())

    # -- one task -------------------------------------------------------------------------------------

    def _start(self, delivery: Delivery) -> None:
        job = asyncio.create_task(self._handle(delivery), name=f"task-{delivery.task.id}")
        self.running[delivery.entry_id] = job
        self.metrics.set_in_flight(len(self.running))

        def done(_: asyncio.Task[None]) -> None:
            self.running.pop(delivery.entry_id, None)
            self.metrics.set_in_flight(len(self.running))
            self.slot_freed.set()

        job.add_done_callback(done)

    async def _handle(self, delivery: Delivery) -> None:
        task = delivery.task
        fields = self._task_fields(task)
        log.info("task started", extra={**fields, "deliveries": delivery.deliveries})
        started = time.monotonic()
        try:
            with tracing.task_scope(task, self.config) as span:
                outcome = await self._execute(task, started)
                tracing.record(span, outcome)
        except asyncio.CancelledError:
            # Shutdown after the grace period: the work did not finish, so another replica must do it.
            log.warning("task cut by shutdown, handing it back", extra=fields)
            await asyncio.shield(self._release(delivery, started=True))
            raise
        seconds = time.monotonic() - started
        # Counted and logged as the run is told it: an answer the bus cannot take (too large) is stored as a failure.
        result = self.consumer.as_stored(delivery, outcome.result) if self.consumer else outcome.result
        label = outcome.label if result.ok or not outcome.result.ok else "error"
        self.metrics.finished(label, seconds, result.tokens)
        self.metrics.model_usage(
            outcome.usage.prompt_tokens, outcome.usage.completion_tokens, outcome.usage.first_token_seconds
        )
        if label == "ok":
            self.durations.add(seconds)
        await self._complete(delivery, result, fields)
        level = logging.INFO if result.ok else logging.WARNING
        message = "task done" if result.ok else f"task failed: {result.error}"
        log.log(level, message, extra={**fields, "outcome": label, "duration_ms": round(seconds * 1000, 1)})

    async def _execute(self, task: Task, started: float) -> Outcome:
        kind = str(task.kind)
        timeout = effective_timeout(task, self.spec, self.backend.timeout_seconds)
        label, error, out = "ok", None, BackendOutput(None)
        error_type, retry_after = None, None
        calls: list[ToolCall] = []  # the backend records its tool calls here, so a failed attempt reports them too
        updates: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        deadline = TASK_DEADLINE.set(asyncio.get_running_loop().time() + timeout)
        recorder = TASK_TOOL_CALLS.set(calls)
        try:
            async with asyncio.timeout(timeout) as scope:
                with sdk.collecting(task.context) as asked:
                    out = checked(task, await self._remembering(task))
                updates, messages = effects(task, out, asked)
        except TimeoutError:
            if scope.expired():
                label, error = "timeout", f"timed out after {timeout:g}s"
            else:
                label, error = "error", "TimeoutError inside the backend"
        except BackendError as exc:
            label, error, out = "error", str(exc), exc.spent or out
            if isinstance(exc, Throttled):
                label, error_type, retry_after = "throttled", THROTTLED, exc.retry_after
            elif isinstance(exc, InvalidOutput):
                label, error_type = "invalid", INVALID_OUTPUT
            elif isinstance(exc, BudgetSpent):
                error_type = BUDGET_SPENT
            elif isinstance(exc, Refused):
                error_type = REFUSED
            elif isinstance(exc, Unreachable):
                self.backend_doubt.set()
        except Exception as exc:
            label, error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            TASK_DEADLINE.reset(deadline)
            TASK_TOOL_CALLS.reset(recorder)
        ok = error is None
        return Outcome(
            Result(
                task_id=task.id,
                attempt=task.attempt,
                ok=ok,
                output=out.output if ok else None,
                error=error,
                quality=out.quality if ok else None,
                tokens=out.tokens,
                cost=task_cost(self.spec, kind, out, ok=ok),
                duration_ms=round((time.monotonic() - started) * 1000, 3),
                agent=self.config.agent,
                replica=self.config.replica,
                error_type=error_type,
                retry_after=retry_after,
                tool_calls=[c.to_wire() for c in calls],
                state_updates=(updates or None) if ok else None,
                messages=(messages or None) if ok else None,
            ),
            label,
            out,
        )

    async def _remembering(self, task: Task) -> BackendOutput:
        """The answer, with the agent's memory shown to the backend before and the answered turn recorded after."""
        if self.memory is None or not self.backend.handles(str(task.kind)):
            return await self._answer(task)
        shown = TASK_MEMORY.set(await self.memory.recall(task))
        try:
            out = checked(task, await self._answer(task))
        finally:
            TASK_MEMORY.reset(shown)
        await self.memory.record(task, out.output)
        return out

    async def _answer(self, task: Task) -> BackendOutput:
        kind = str(task.kind)
        if self.backend.handles(kind):
            try:
                return await self.backend.run(task)
            except NotImplementedError:
                if kind not in DEFAULT_KINDS:
                    raise BackendError(f"agent {self.config.agent} does not handle {kind!r} tasks") from None
        elif kind not in DEFAULT_KINDS:
            raise BackendError(f"agent {self.config.agent} does not handle {kind!r} tasks")
        load = max(0, len(self.running) - 1) / self.spec.concurrency  # the other work; not this bid itself
        return BackendOutput(defaults.bid(self.spec, task.input, load=load, eta_seconds=self.durations.average()))

    async def _complete(self, delivery: Delivery, result: Result, fields: dict[str, Any]) -> None:
        """Store the result, however long Redis takes to take it (an outage, memory pressure, a failover): the task
        stays this replica's meanwhile (its heartbeats go on, so no other replica takes it). Only shutdown ends the
        retries, after the grace period; the task then returns to the others when this replica's lease lapses."""
        assert self.consumer is not None
        attempt = 0
        while True:
            try:
                await self.consumer.complete(delivery, result)
                self.health.redis_ok = True
                if attempt:
                    log.info(f"result stored after {attempt} failed tries", extra=fields)
                return
            except (RedisError, OSError) as exc:
                attempt += 1
                self.health.redis_ok = False
                self.metrics.store_retried()
                log.warning(f"could not store result (try {attempt}, retrying): {exc}", extra=fields)
                await asyncio.sleep(min(STORE_RETRY_CAP_SECONDS, 0.1 * 2**attempt))

    async def _release(self, delivery: Delivery, *, started: bool = False) -> None:
        assert self.consumer is not None
        try:
            await self.consumer.release(delivery, started=started)
        except (RedisError, OSError) as exc:
            log.warning(
                f"release failed, the task returns after the lease: {exc}", extra=self._task_fields(delivery.task)
            )

    # -- background -----------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            self.health.tick()
            await asyncio.sleep(TICK_SECONDS)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_seconds / 3)
            await self._beat()

    async def _beat(self) -> None:
        assert self.consumer is not None
        async with self.membership:
            if self.left:
                return
            try:
                load, problem = len(self.running) / self.spec.concurrency, self.health.backend_problem
                await self.consumer.heartbeat(load, len(self.running), problem)
                self.health.redis_ok = True
            except (RedisError, OSError) as exc:
                self.health.redis_ok = False
                log.warning(f"heartbeat failed: {exc}", extra=self._who())

    async def _watch_backend(self, backend: Probed) -> None:
        """Whether the backend's upstream (the llm backend's model server) takes requests: asked every
        PROBE_SECONDS, at once after a task found it unreachable, every PROBE_DOWN_SECONDS while it is down. While
        it is down the replica fails /readyz, takes no tasks and says why in its heartbeat, so runs pass the agent
        over naming why instead of spending their attempts on it. Nothing is taken before the first probe is back,
        and a first probe that fails makes it down at once."""
        failed = 0
        while True:
            self.backend_doubt.clear()
            try:
                said = await backend.probe()
            except Exception as exc:  # a probe that breaks says nothing of the server: tasks will tell
                log.warning(f"backend probe failed: {type(exc).__name__}: {exc}", extra=self._who())
                said = None
            failed = failed + 1 if said else 0
            first = not self.health.backend_checked
            problem = backend_problem(self.health.backend_problem, said, failed, first=first)
            self.health.backend_checked = True
            self.metrics.set_backend_up(problem is None)
            if problem != self.health.backend_problem:
                if problem is None:
                    log.info("backend answers again: taking tasks", extra=self._who())
                    self.slot_freed.set()
                elif self.health.backend_problem is None:
                    log.warning(f"backend unavailable, taking no tasks until it answers: {problem}", extra=self._who())
                self.health.backend_problem = problem
                await self._beat()  # the operator hears it now, not at the next lease renewal
            elif first:
                self.slot_freed.set()  # it answered: the fetch loop waits for no more
            wait = PROBE_DOWN_SECONDS if said else PROBE_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.backend_doubt.wait(), wait)

    async def _watch_config(self) -> None:
        """Poll the spec file: ConfigMap updates swap a symlink, which inotify on the path would miss."""
        path = self.config.config_path
        while True:
            await asyncio.sleep(CONFIG_POLL_SECONDS)
            try:
                raw = await asyncio.to_thread(path.read_bytes)
            except OSError:
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if digest == self.config_digest:
                continue
            self.config_digest = digest
            try:
                spec = parse_spec(raw.decode("utf-8", errors="replace"), source=str(path))
            except ConfigError as exc:
                log.error(f"config change ignored: {exc}", extra=self._who())
                continue
            self.apply_spec(spec)

    def apply_spec(self, spec: AgentSpec) -> None:
        if spec.backend != self.spec.backend:
            log.warning("backend changed in the config: restart the replica to apply it", extra=self._who())
        if spec.a2a != self.spec.a2a:
            log.warning("a2a changed in the config: restart the replica to apply it", extra=self._who())
        previous = self.spec
        # The backend, its tools and the A2A server are built at start: a change needs a restart (the pods roll).
        self.spec = spec.model_copy(update={"backend": previous.backend, "a2a": previous.a2a, "tools": previous.tools})
        # Only a change of the field counts, so that an edit elsewhere does not undo a SIGUSR1 toggle.
        if self.memory is not None:
            self.memory.spec = spec.memory or Memory()
        if spec.maintenance != previous.maintenance:
            self.set_maintenance(spec.maintenance, "config file")
        self.slot_freed.set()
        log.info("config reloaded", extra=self._who())

    # -- helpers --------------------------------------------------------------------------------------

    async def _wait_slot(self, seconds: float) -> None:
        stop = asyncio.create_task(self.stopping.wait())
        slot = asyncio.create_task(self.slot_freed.wait())
        await asyncio.wait([stop, slot], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stop, slot):
            waiter.cancel()

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _who(self) -> dict[str, Any]:
        return {"agent": self.config.agent, "namespace": self.config.namespace, "replica": self.config.replica}

    def _task_fields(self, task: Task) -> dict[str, Any]:
        return {
            **self._who(),
            "task_id": task.id,
            "kind": str(task.kind),
            "attempt": task.attempt,
            "orchestration": task.orchestration or None,
        }
