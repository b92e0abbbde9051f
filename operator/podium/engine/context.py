"""The run context every strategy works through: dispatch with memoised journal, agent selection, retries,
circuit breakers, budgets, degradation, suspend/cancel and progress.

A strategy calls :meth:`RunContext.run_task` with a step id that names the task's place in its plan. The task id
is ``<uid>:<step>:<attempt>``, so re-running a strategy after a restart finds finished steps in the journal and
re-attaches to steps in flight; strategies have no resume code of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from podium.api.orchestration import BalanceWeights, Limits, OrchestrationSpec, Target
from podium.dataplane.allowance import META_KEY as ALLOWANCE_KEY
from podium.dataplane.allowance import Allowance
from podium.dataplane.batch import After, Batcher, Queue
from podium.dataplane.messages import ERROR_TYPES, REFUSED, PayloadTooLarge, Result, Task
from podium.dataplane.toolcalls import TOOL_CALL_EVENT
from podium.engine import availability, degradation, selection, tracing
from podium.engine.availability import Availability, State
from podium.engine.budget import Budget, LiveLimits, allowance
from podium.engine.contracts import Contract
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.journal import DISPATCHED, DONE, Entry, Journal
from podium.engine.kept import Kept
from podium.engine.progress import FINISHED, Progress, TaskRecord
from podium.engine.resilience import Breaker, BreakerStore, backoff_delay, parse_breaker
from podium.engine.stats import Failure, Outcome, PerfStats, RecentView, StatsStore, parse_recent

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
# Makes each combined item's result of the batch's replies (indexes into them were taken when queueing).
Parse = Callable[[Sequence[Any]], list[R]]
# Queues many items' commands on a pipeline; returns their Parse.
QueueMany = Callable[[Any, Sequence[T]], Parse[R]]

if TYPE_CHECKING:
    from podium.engine.collaboration import Collaboration

# Time an agent gets beyond its own timeout to report, so its own timeout error wins over ours.
RESULT_GRACE_SECONDS = 5.0
# The longest a Retry-After from an agent's upstream may delay the next attempt: a server asking for an hour is
# answered by the next agent (or by failing the step), not by holding the run.
MAX_RETRY_AFTER_SECONDS = 300.0
# How long a run waits for an agent that is not up yet (autoscaled at zero, first replicas starting): the API's
# default for spec.agentWaitSeconds, for contexts built without a spec.
DEFAULT_AGENT_WAIT_SECONDS = float(OrchestrationSpec.model_fields["agent_wait_seconds"].default)


class TaskBus(Protocol):
    """The part of :class:`podium.dataplane.bus.Bus` the engine uses."""

    async def dispatch(self, task: Task) -> None: ...
    async def dispatch_many(
        self, tasks: Sequence[Task], *, before: Queue | None = None, after: After | None = None
    ) -> None: ...
    async def wait_result(self, task: Task, timeout: float) -> Result | None: ...  # noqa: ASYNC109
    async def get_result(self, task: Task) -> Result | None: ...
    async def withdraw(self, task: Task) -> bool: ...
    async def queued(self, task: Task) -> bool: ...
    async def cancelled(self, task: Task) -> bool: ...


class TaskFailed(Exception):
    """Every attempt of a step failed, on every agent that could do it.

    ``unavailable`` names the agents meant for the step that could not be used at all (scaled to zero, in
    maintenance, never woke up); ``attempts`` counts the attempts an available agent made. A step with
    unavailable agents and no attempt failed for want of agents: the run's reason is then AgentUnavailable.
    """

    def __init__(
        self,
        step: str,
        errors: list[str],
        priorities: list[str],
        *,
        unavailable: Sequence[str] = (),
        attempts: int = 0,
        subject: str | None = None,
    ) -> None:
        self.step = step
        self.errors = errors
        self.priorities = priorities
        self.unavailable = list(unavailable)
        self.attempts = attempts
        self.subject = subject or f"step {step!r}"
        detail = "; ".join(_counted(errors)[-3:]) or "no agent available"
        super().__init__(f"{self.subject} failed: {detail}")

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else "no agent available"

    @property
    def for_want_of_agents(self) -> bool:
        """No agent could take the step: every one meant for it was unavailable."""
        return bool(self.unavailable) and self.attempts == 0

    def about(self, subject: str) -> TaskFailed:
        """The same failure, named for what it was to the strategy (e.g. ``stage 'review'``)."""
        return TaskFailed(
            self.step,
            self.errors,
            self.priorities,
            unavailable=self.unavailable,
            attempts=self.attempts,
            subject=subject,
        )


def _counted(errors: Sequence[str]) -> list[str]:
    """The errors in order, a run of the same one said once with how many times (three attempts that could not
    reach the model are one line, leaving room for a different error before them)."""
    out: list[tuple[str, int]] = []
    for error in errors:
        if out and out[-1][0] == error:
            out[-1] = (error, out[-1][1] + 1)
        else:
            out.append((error, 1))
    return [error if n == 1 else f"{error} ({n} times)" for error, n in out]


class RunCancelled(Exception):
    pass


ProgressCallback = Callable[[Progress], Awaitable[None] | None]
SuspendProbe = Callable[[], Awaitable[bool]]
Validator = Callable[[Any], str | None]
# The agents as they are now (the operator reads them again), already scoped to the run.
Refresh = Callable[[], Awaitable[AgentDirectory]]
# Told of every event the run publishes (type, payload): how the operator counts them as metrics.
EventHook = Callable[[str, Any], None]


@dataclass(frozen=True)
class Look:
    """What a step reads before it dispatches, all in one round trip: its journal entry, its candidates' recent
    outcomes (when it ranks them: all that ranking weighs of their stats) and their breakers. The breakers stand
    for the step's first dispatch only: every later attempt reads them again."""

    entry: Entry | None
    stats: dict[str, PerfStats]
    breakers: dict[str, Breaker]


@dataclass(frozen=True)
class Next:
    """The step a strategy runs next, and who may do it (as :meth:`RunContext.run_task` takes them): told to the
    step before it, so that the reads it needs go out with that step's last writes, a round trip fewer per step."""

    step: str
    target: Target | None = None
    agent: str | None = None
    agents: Sequence[str] | None = None
    fallback: Sequence[str] = ()


@dataclass(frozen=True)
class _Reads:
    """What a step's :class:`Look` reads: its journal entry, the stats of the agents it ranks, breakers."""

    step: str
    pool: list[AgentInfo] | None  # the agents it ranks (a target), else None
    breakers: list[str]

    @property
    def ranked(self) -> list[str]:
        return [a.name for a in self.pool or ()]

    def covers(self, other: _Reads) -> bool:
        return self.step == other.step and self.ranked == other.ranked and set(other.breakers) <= set(self.breakers)


class _Event(NamedTuple):
    """An event of the run's stream, queued with a step's writes."""

    sender: str
    type: str
    payload: Any
    at: float | None = None  # when it happened, if not when it is queued


@dataclass
class _Written:
    """One attempt's result writes, to go out with those of the run's other steps (:meth:`RunContext._write`)."""

    agent: str
    outcome: Outcome
    cost: float
    tokens: int
    breaker: bool  # read the agent's breaker after the writes
    entry: Entry | None  # the step's journal entry, when it is done
    events: list[_Event]  # in order
    ahead: _Reads | None  # the next step's reads (run_task's ``then``)


@dataclass
class RunOptions:
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    suspend_poll_seconds: float = 1.0
    approval_poll_seconds: float = 0.5
    refresh_seconds: float = 2.0  # how old the view of the agents may be when a dispatch asks who is available
    wake_poll_seconds: float = 2.0  # how often a run waiting for an agent (to come up, or to answer) looks again
    # How old the reads of a step taken with the previous step's result (:class:`Next`) may be when it starts;
    # older ones (an approval waited for, a slow strategy) are read again, so a breaker is never judged stale.
    look_ahead_seconds: float = 0.1
    # How old a run's view of its agents' recent outcomes (what ranking them weighs) may be: its own outcomes count
    # at once, other runs' once it reads the agent's list again (:class:`podium.engine.stats.RecentView`).
    recent_seconds: float = 2.0


class RunContext:
    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        bus: TaskBus,
        directory: AgentDirectory,
        uid: str,
        namespace: str,
        name: str,
        limits: Limits | LiveLimits | None = None,
        state: Any = None,
        team: str | None = None,
        on_progress: ProgressCallback | None = None,
        is_suspended: SuspendProbe | None = None,
        options: RunOptions | None = None,
        collab: Collaboration | None = None,
        refresh: Refresh | None = None,
        agent_wait_seconds: float = DEFAULT_AGENT_WAIT_SECONDS,
        on_event: EventHook | None = None,
        kept: Kept | None = None,
    ) -> None:
        self.redis = redis
        self.collab = collab  # blackboard, messages, approval (podium.engine.collaboration); None: none of them
        self.bus = bus
        self.directory = directory
        self._known = directory  # who the spec may name; agents that vanish later are unavailable, not unknown
        self.uid = uid
        self.namespace = namespace
        self.name = name
        self.team = team
        self.state = state
        self.options = options or RunOptions()
        self.kept = kept or Kept()  # what it wrote that the run can write back (:mod:`podium.engine.kept`)
        self.journal = Journal(redis, namespace, name, uid, self.kept.done)
        # Edited while the run runs (spec.limits), they apply from the next dispatch on: LiveLimits.
        self.budget = Budget(redis, namespace, name, uid, limits or Limits(), self.kept)
        self.breakers = BreakerStore(redis, namespace)
        self.stats = StatsStore(redis, namespace)
        self._recent = RecentView(self.options.recent_seconds)
        self._batch = Batcher(redis)  # the run's parallel steps share round trips (podium.dataplane.batch)
        self.degraded = False
        self.notes: list[str] = []
        self.partial: Any = None  # best result so far, reported if the run stops early (budget, cancel)
        self.records: dict[str, TaskRecord] = {}
        self.expected = 0
        self._on_progress = on_progress
        self._is_suspended = is_suspended
        self._cancelled: str | None = None
        self._assigned: dict[str, int] = {}  # in-flight tasks this run handed each agent: load it adds
        self._allowance = Allowance()  # what the run had left at the last checkpoint: sent with each task
        self.attempts = tracing.Attempts()  # open attempt spans (docs/observability.md)
        self._refresh = refresh
        self._fresh_at = self.options.clock()
        self.agent_wait_seconds = agent_wait_seconds
        # task id -> agent, from dispatch until its result is settled: what the run leaves queued if it ends first
        self.unsettled: dict[str, str] = {}
        self.withdrawn: dict[str, int] = {}  # queued attempts taken back while the run went on, by agent
        self._gone: dict[str, str] = {}  # task id -> why no result will ever come (its agent deleted meanwhile)
        self.waiting: dict[str, str] = {}  # task id -> the agent it waits for to come up, and why (condition Waiting)
        self._on_event = on_event
        self._ahead: tuple[_Reads, Look, float] | None = None  # the next step's look, read with the last result
        self._written: list[tuple[_Written, asyncio.Future[tuple[Any, Look | None]]]] = []  # not sent yet
        self._looking: list[tuple[_Reads, asyncio.Future[Look]]] = []  # steps' reads not sent yet
        self._dispatching: list[Entry] = []  # journal entries of dispatches not sent yet
        # A sequential step's success writes ride the next dispatch's round trip (:meth:`_defer`), and the step after
        # it has its reads taken with that dispatch: a pipeline step costs its dispatch and its result read.
        self._deferred: list[_Written] = []
        self._looks_due: list[_Reads] = []  # the next steps' reads, to go with the next dispatch
        self._flush_soon: asyncio.Handle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._deferred_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle hooks
    @property
    def limits(self) -> Limits:
        """The run's limits as they are now (:class:`podium.engine.budget.LiveLimits`)."""
        return self.budget.limits

    @property
    def orchestration(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def start(self) -> None:
        await self.budget.start(self.options.clock())
        if self.kept.done:  # run again in the same process (Redis went away): it may have come back empty
            await self._restore()

    def cancel(self, reason: str = "cancelled") -> None:
        self._cancelled = reason

    def is_cancelled(self) -> bool:
        return self._cancelled is not None

    def raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise RunCancelled(self._cancelled)

    async def wait_if_suspended(self) -> None:
        """Block while the orchestration is suspended; in-flight tasks finish, nothing new is dispatched."""
        if self._is_suspended is None:
            return
        while await self._is_suspended():
            if self._cancelled:
                break
            await self.options.sleep(self.options.suspend_poll_seconds)

    async def checkpoint(self) -> None:
        """Before each dispatch: honour cancel and suspend, then the budgets (which count the task it admits)."""
        if self._cancelled:
            raise RunCancelled(self._cancelled)
        await self.wait_if_suspended()
        if self._cancelled:
            raise RunCancelled(self._cancelled)
        usage = await self.budget.admit(self.options.clock())
        self._allowance = allowance(self.limits, usage)

    def degrade(self, note: str) -> None:
        self.degraded = True
        self.notes.append(note)

    async def share(self, key: str, value: Any) -> None:
        """Put a value in the orchestration's shared state, where agents and people can read it."""
        if self.state is not None:
            await self.state.set(key, value, writer="engine")

    async def publish(self, type: str, payload: Any) -> None:
        """An event on the orchestration's stream (``podium run history`` shows it, agents can follow it)."""
        await self.publish_as("engine", type, payload)
        if self._on_event is not None:
            self._on_event(type, payload)

    def announce(self, type: str, payload: Any) -> None:
        """:meth:`publish` without a round trip of its own: the event goes out with the run's next commands queued
        in this turn of the event loop (``run.started`` with the first step's reads, ``run.finished`` with writes
        still waiting at the end), or alone. A failure is raised where a deferred write's is: at the next dispatch,
        or by :meth:`settle_writes`."""
        event = _Event("engine", type, payload, self.options.clock())
        task = asyncio.create_task(self._announce(event), name=f"event {type} {self.orchestration}")
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _announce(self, event: _Event) -> None:
        try:
            await self._batch.run(lambda pipe: self._queue_events(pipe, [event]))
            await self._told([event])
        except Exception as exc:
            self._deferred_error = self._deferred_error or exc

    async def publish_as(self, sender: str, type: str, payload: Any) -> None:
        """A message on the run's stream from ``sender`` (an agent's ``messages``): routed to its subscribers."""
        publish = getattr(self.bus, "publish", None)
        if publish is not None:
            await publish(self.orchestration, type, payload, sender)

    def expect(self, steps: int) -> None:
        """Tell progress how many more tasks the strategy plans (done/total in status)."""
        self.expected += steps

    # ------------------------------------------------------------------ agents
    async def perf(self, agents: Sequence[AgentInfo]) -> dict[str, PerfStats]:
        """Their stats, in one round trip shared with whatever else the run sends then (run.started, for a plan
        ranked before any step)."""
        names = [a.name for a in agents]
        if not names:
            return {}
        parse: list[Callable[[Sequence[Any]], dict[str, PerfStats]]] = []
        replies = await self._batch.run(lambda pipe: parse.append(self.stats.queue_get_many(pipe, names)))
        return parse[0](replies)

    async def ranked(
        self,
        agents: Sequence[AgentInfo],
        required: Sequence[str] = (),
        weights: BalanceWeights = selection.DEFAULT_BALANCE,
    ) -> list[AgentInfo]:
        """Agents best first for a task needing ``required`` capabilities (:func:`podium.engine.selection.rank`)."""
        stats = await self.perf(agents)
        return selection.rank(agents, stats, required=required, assigned=self._assigned, weights=weights)

    async def candidates(self, target: Target) -> list[AgentInfo]:
        required = [target.capability] if target.capability else []
        return await self.ranked(self.directory.resolve(target), required, target.weights)

    async def refresh(self) -> None:
        """Read the agents again: replicas come and go, agents enter maintenance, while the run goes."""
        if self._refresh is None:
            return
        try:
            self.directory = await self._refresh()
        except Exception as exc:  # the API server away for a moment: the last view stands
            log.warning("cannot read the agents again, keeping the last view: %s", exc)
        self._fresh_at = self.options.clock()

    async def availability(self, name: str, *, fresh: bool = False) -> Availability:
        """Whether ``name`` can take work now, by a view at most ``refresh_seconds`` old (``fresh``: read now)."""
        if self._refresh is not None and (
            fresh or self.options.clock() - self._fresh_at >= self.options.refresh_seconds
        ):
            await self.refresh()
        if name not in self.directory:
            return Availability(State.UNAVAILABLE, "no longer in the orchestration's scope (deleted?)")
        return availability.of(self.directory.get(name))

    def usable(self, agents: Sequence[AgentInfo]) -> list[AgentInfo]:
        """The agents that can take work now or once they are up, by the current view."""
        return availability.usable(list(agents))

    def info(self, name: str) -> AgentInfo:
        """The agent as now seen, or as it was when the run started if it has gone since."""
        return self.directory.get(name) if name in self.directory else self._known.get(name)

    def assigned(self, agent: str) -> int:
        return self._assigned.get(agent, 0)

    # ------------------------------------------------------------------ the one way to run a task
    @tracing.step
    async def run_task(
        self,
        step: str,
        kind: str,
        input: Any,
        *,
        target: Target | None = None,
        agent: str | None = None,
        agents: Sequence[str] | None = None,
        required: Sequence[str] = (),
        retries: int | None = None,
        fallback: Sequence[str] = (),
        validate: Validator | None = None,
        contract: Contract | None = None,
        timeout_seconds: float | None = None,
        then: Next | None = None,
    ) -> Result:
        """Run one step to a successful Result or raise :class:`TaskFailed`.

        Who: ``agent`` (that one), ``agents`` (in that order) or ``target`` (ranked by load, capability and recent
        success, with the target's weights), then ``fallback``. An unavailable agent (scaled to zero without
        autoscaling, in maintenance, no ready replica) is passed over; one that is not up yet (autoscaled at zero,
        starting) gets the task and the run waits for it at most ``agent_wait_seconds``; when the first choice was
        passed over and another agent did the step, the run is degraded. Each agent gets ``retries`` retries
        (default: its resilience) with its backoff policy (exponential or linear) and jitter; an agent whose
        breaker is open is skipped. ``validate`` returns an error message for an output that must not be accepted
        (it then counts as a failed attempt). ``contract`` travels with the task as its output schema, and an
        output that does not honour it is rejected the same way. A throttled attempt (the agent's upstream said
        429) waits at least its ``retry_after`` before the next. ``then``: the step the strategy runs next, whose
        reads then go with this step's last writes.
        """
        validate = _checked(contract, validate)
        schema = contract.schema if contract is not None else None
        reads = self._reads(Next(step, target, agent, agents, fallback))
        pool = reads.pool
        look = self._looked_ahead(reads) or await self.look(reads)
        entry = look.entry
        record = self.records.setdefault(step, TaskRecord(step=step, kind=str(kind)))
        if entry is not None and entry.state == DONE:
            return await self._accept(step, self._replay(entry, record))
        names = self._candidate_names(target, agent, agents, required, fallback, pool, look.stats)
        fresh: Look | None = look  # its breakers and usage stand for the first dispatch, not for any later one
        errors: list[str] = []
        passed_over: dict[str, str] = {}  # unavailable agents, with why
        worked = 0  # attempts an agent took (answered, or kept silent past its timeout)
        attempt = 0
        tried: list[str] = []
        if entry is not None and entry.state == DISPATCHED:
            # In flight when the previous run stopped: wait for that task instead of dispatching a duplicate.
            attempt, tried = entry.attempt, list(entry.history)
            record.agent, record.state, record.attempts, record.task_id = entry.agent, "Running", attempt, entry.task_id
            record.started_at = entry.started_at
            task = self._task(step, kind, input, entry.agent, attempt, timeout_seconds, schema)
            task.id = entry.task_id
            self.unsettled[task.id] = entry.agent
            sent = self.options.clock()
            fresh = None
            result = await self.bus.get_result(task) or await self._wait(task, entry.agent, timeout_seconds, entry)
            worked += 1
            outcome = await self._settle(step, record, entry.agent, task, result, validate, tried, sent, then)
            if isinstance(outcome, Result):
                return await self._accept(step, outcome)
            errors.append(outcome)
            self._gone.pop(task.id, None)  # a deleted agent is passed over below, as unavailable
        for name in names:
            state = await self.availability(name)
            if state.state is State.WAKING and self.agent_wait_seconds <= 0:
                state = Availability(State.UNAVAILABLE, f"{state.reason}, and agentWaitSeconds is 0")
            if not state.usable:
                errors.append(f"{name}: unavailable: {state.reason}")
                passed_over[name] = state.reason
                continue
            info = self.info(name)
            retry_spec = info.resilience.retry
            limit = retry_spec.limit if retries is None else retries
            asked_wait = 0.0  # what the last attempt's upstream asked for (Retry-After)
            for retry in range(limit + 1):
                if not await self._breaker_allows(info, fresh.breakers.get(name) if fresh is not None else None):
                    errors.append(f"{name}: circuit breaker open")
                    break
                if retry > 0:
                    delay = backoff_delay(retry, retry_spec.backoff, self.options.rng, policy=retry_spec.policy)
                    await self.options.sleep(max(delay, asked_wait))
                await self.checkpoint()
                # Its breaker as read for this dispatch: closed and clean, a success changes nothing there.
                clean = fresh is not None and fresh.breakers.get(name) == Breaker()
                fresh = None
                attempt += 1
                tried.append(name)
                timeout = timeout_seconds or info.resilience.timeout_seconds
                task = self._task(step, kind, input, name, attempt, timeout, schema)
                try:
                    journaled = await self._dispatch(step, record, task, tried, then)
                except PayloadTooLarge as exc:
                    # Every agent, every retry would be sent the same bytes: the step cannot run, and says why.
                    unsendable = (
                        f"its task is {exc.size} bytes encoded, over the bus limit of {exc.limit}: pass large inputs "
                        "by reference (a URL, or a key of the run's shared state), not inline"
                    )
                    await self._finish(step, record, attempt, tried, None, unsendable)
                    raise TaskFailed(step, [unsendable], self.priorities(names), attempts=worked) from None
                sent = self.options.clock()
                if state.state is State.WAKING:
                    why, result = await self._wait_waking(task, name, state, timeout_seconds, journaled)
                    if why is not None:
                        await self._withdraw(task)
                        errors.append(f"{name}: unavailable: {why}")
                        passed_over[name] = why
                        break
                    state = availability.AVAILABLE
                else:
                    result = await self._wait(task, name, timeout_seconds, journaled)
                worked += 1
                outcome = await self._settle(step, record, name, task, result, validate, tried, sent, then, clean)
                if isinstance(outcome, Result):
                    if names[0] in passed_over and name != names[0]:
                        first = names[0]
                        self.degrade(f"agent {first!r} unavailable ({passed_over[first]}); {step} went to {name!r}")
                    return await self._accept(step, outcome)
                errors.append(outcome)
                gone = self._gone.pop(task.id, None)
                if gone is not None:  # no retry can reach it: on to the next agent
                    passed_over[name] = gone
                    break
                if result is not None and result.error_type == REFUSED:
                    break  # its upstream would refuse the same request again; another agent (a fallback) may not
                asked_wait = min(result.retry_after or 0.0, MAX_RETRY_AFTER_SECONDS) if result else 0.0
        await self._finish(step, record, attempt, tried, None, errors[-1] if errors else "no agent available")
        if not worked:
            await self.publish("task.no_agents_available", {"step": step, "agents": names, "why": errors[-3:]})
        raise TaskFailed(step, errors, self.priorities(names), unavailable=list(passed_over), attempts=worked)

    async def try_task(self, step: str, kind: str, input: Any, **how: Any) -> Result | None:
        """:meth:`run_task`, but a lost step degrades the run instead of failing it, unless its agents are
        critical (see :func:`podium.engine.degradation.assess`)."""
        try:
            return await self.run_task(step, kind, input, **how)
        except TaskFailed as exc:
            if degradation.assess(exc.priorities) is degradation.Verdict.FAIL:
                raise
            self.degrade(str(exc))
            return None

    # ------------------------------------------------------------------ internals
    async def _accept(self, step: str, result: Result) -> Result:
        """A step's success, through its approval and its effects (state writes, messages), if any."""
        if self.collab is not None:
            try:
                await self.collab.accept(self, step, result)
            except TaskFailed as exc:  # refused: its agent did the work, but the step did not pass
                record = self.records[step]
                record.state, record.error = "Failed", exc.last_error
                raise
        return result

    def _reads(self, step: Next) -> _Reads:
        """What ``step`` reads before it dispatches: the recent outcomes of the agents its target resolves to (it
        ranks them), the breakers of those or of the first agent it names. Names the run does not know are left out
        (the spec error is reported later)."""
        pool = None
        if step.agent is None and step.agents is None and step.target is not None:
            pool = self.directory.resolve(step.target)
        # Of the agents it names, the first is the one it almost always goes to: the others' breakers are read if
        # and when their turn comes. Of a ranked pool, every one (which comes first is decided on what is read).
        named = [step.agent] if step.agent is not None else [*(step.agents or ()), *step.fallback][:1]
        ranked = [a.name for a in pool or ()]
        breakers = [n for n in dict.fromkeys([*ranked, *named]) if n in self._known or n in ranked]
        return _Reads(step.step, pool, breakers)

    def _queue_looks(self, pipe: Any, looks: Sequence[_Reads], origin: int | None = None) -> Parse[Look]:
        """The reads of many steps as a few commands on the caller's pipeline: their journal entries in one, the
        recent outcomes of each agent they rank whose view is due (:class:`RecentView`) and each one's breaker once.
        Returns what makes each step's :class:`Look` of the replies (counted from the pipeline's ``origin``: where
        the caller's commands start; here, by default)."""
        at = len(pipe) - (len(pipe) if origin is None else origin)
        self.journal.queue_get_many(pipe, [r.step for r in looks])
        now = self.options.clock()
        due = self._recent.due(list(dict.fromkeys(n for r in looks for n in r.ranked)), now)
        for name in due:
            self.stats.queue_recent(pipe, name)
        breakers = list(dict.fromkeys(n for r in looks for n in r.breakers))
        parse_breakers = self.breakers.queue_load_many(pipe, breakers)

        def parse(replies: Sequence[Any]) -> list[Look]:
            entries = self.journal.parse_many(replies[at])
            for i, name in enumerate(due):
                self._recent.read(name, parse_recent(replies[at + 1 + i]), now)
            seen = dict(zip(breakers, parse_breakers(replies[at + 1 + len(due) :]), strict=True))
            return [
                Look(
                    entry=entry,
                    stats={n: self._recent.stats(n) for n in r.ranked},
                    breakers={n: seen[n] for n in r.breakers},
                )
                for r, entry in zip(looks, entries, strict=True)
            ]

        return parse

    async def look(self, reads: _Reads) -> Look:
        """Everything a step reads before it dispatches, in one round trip shared with the run's other steps (their
        reads combined: one journal read for all, each agent's record and breaker once)."""
        return await self._together(self._looking, reads, self._queue_looks)

    async def _together(self, pending: list[tuple[T, asyncio.Future[R]]], item: T, queue: QueueMany[T, R]) -> R:
        """``item`` sent combined with the other items ``pending`` when the batch goes out: the first of these calls
        to reach the pipeline takes every item waiting then, queues them with ``queue`` and hands each its result
        before any of them resumes (:data:`podium.dataplane.batch.After`)."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        pending.append((item, done))
        taken: list[tuple[T, asyncio.Future[R]]] = []
        parse: list[Parse[R]] = []

        def queue_taken(pipe: Any) -> None:
            taken.extend(pending)
            pending.clear()
            if taken:  # else an earlier call of this batch took this one's item with its own
                parse.append(queue(pipe, [i for i, _ in taken]))

        def after(replies: list[Any] | BaseException) -> None:
            results = parse[0](replies) if parse and not isinstance(replies, BaseException) else None
            for n, (_, fut) in enumerate(taken):
                if fut.done():
                    continue
                if results is not None:
                    fut.set_result(results[n])
                elif isinstance(replies, Exception):
                    fut.set_exception(replies)
                else:
                    fut.cancel()

        try:
            await self._batch.run(queue_taken, after)
        except Exception:
            if not done.done():  # not taken by a call whose batch went out: this one's own error
                raise
        return await done

    def _looked_ahead(self, reads: _Reads) -> Look | None:
        """The look taken with the previous step's result, if it was for this step and is still fresh."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or not ahead[0].covers(reads):
            return None
        return ahead[1] if self.options.clock() - ahead[2] <= self.options.look_ahead_seconds else None

    def _candidate_names(
        self,
        target: Target | None,
        agent: str | None,
        agents: Sequence[str] | None,
        required: Sequence[str],
        fallback: Sequence[str],
        pool: Sequence[AgentInfo] | None,
        stats: dict[str, PerfStats],
    ) -> list[str]:
        if agent is not None:
            names = [agent]
        elif agents is not None:
            names = list(agents)
        elif target is not None:
            # A capability target ranks its agents by their level in it too (not only by load and success).
            needed = required or ([target.capability] if target.capability else [])
            ranked = selection.rank(pool or [], stats, required=needed, assigned=self._assigned, weights=target.weights)
            names = [a.name for a in ranked]
        else:
            raise ValueError("run_task needs agent, agents or target")
        for name in [*names, *fallback]:
            self._known.get(name)  # unknown names are a spec error, reported as such
        return list(dict.fromkeys([*names, *fallback]))

    def _task(
        self,
        step: str,
        kind: str,
        input: Any,
        agent: str,
        attempt: int,
        timeout: float | None,
        schema: dict[str, Any] | None = None,
    ) -> Task:
        return Task(
            id=f"{self.uid}:{step}:{attempt}",
            kind=str(kind),
            input=input,
            namespace=self.namespace,
            agent=agent,
            orchestration=self.orchestration,
            attempt=attempt,
            timeout_seconds=timeout,
            meta={"step": step, "uid": self.uid}
            | ({ALLOWANCE_KEY: self._allowance.to_meta()} if self._allowance.bounded else {}),
            output_schema=schema,
        )

    async def _breaker_allows(self, info: AgentInfo, seen: Breaker | None = None) -> bool:
        # A plain read first (or the step's look): a closed breaker (the usual case) needs no watched transaction.
        if seen is None:
            seen = await self.breakers.load(info.name)
        return await self.breakers.admit(info.name, self.options.clock(), info.resilience.circuit_breaker, seen=seen)

    async def _dispatch(
        self, step: str, record: TaskRecord, task: Task, tried: list[str], then: Next | None = None
    ) -> Entry:
        """Send one attempt, its journal entry ahead of it; returns that entry."""
        self._raise_deferred_error()
        now = self.options.clock()
        kind, attempt = str(task.kind), task.attempt
        entry = Entry(step, DISPATCHED, task.id, task.agent, attempt, kind, started_at=now, history=tried)
        record.agent, record.state, record.attempts, record.task_id = task.agent, "Running", task.attempt, task.id
        record.started_at = record.started_at or now
        if self.collab is not None:
            await self.collab.prepare(self, step, task)
        self._assigned[task.agent] = self._assigned.get(task.agent, 0) + 1
        self.attempts.start(step, task)
        try:
            await self._send(task, entry, then)
        except PayloadTooLarge as exc:  # nothing went out, nor its journal entry
            self._release(task.agent)
            self.attempts.end(task, None, str(exc))
            raise
        await self._report()
        return entry

    async def _send(self, task: Task, entry: Entry, then: Next | None = None) -> None:
        # Journal first: Redis applies the entry and the count before it queues the task (the same round trip on
        # one server, ahead of it in the pipeline; a round trip before it on a Cluster). If we crash in between,
        # the restart waits for a task that never went out, times out and retries; the other order could run the
        # task twice. The first dispatch of a batch writes the entries of every dispatch waiting then (parallel
        # steps: one HSET and one count for all), each ahead of its own task; with them go the success writes
        # waiting to ride (:meth:`_defer`), and after them the reads of the step ``then`` names.
        self._dispatching.append(entry)
        if then is not None:
            self._looks_due.append(self._reads(then))
        parsed: list[Parse[tuple[_Reads, Look]]] = []
        try:
            await self.bus.dispatch_many(
                [task], before=lambda pipe: self._queue_ride(pipe, parsed), after=lambda r: self._rode(parsed, r)
            )
        except BaseException:
            if entry in self._dispatching:  # refused before anything was sent (too large): no entry either
                self._dispatching.remove(entry)
                self._schedule_flush()  # writes that were to ride it go on their own
            raise
        self.unsettled[task.id] = task.agent

    def _queue_ride(self, pipe: Any, parsed: list[Parse[tuple[_Reads, Look]]]) -> None:
        """What goes ahead of the dispatches waiting now: the success writes deferred to this round trip, the journal
        entries and the count of every waiting dispatch (ahead of their tasks), then the reads of the steps after
        them (taken after the writes, so they see them). ``parsed`` gets what makes the looks of the replies."""
        origin = len(pipe)
        written, self._deferred = self._deferred, []
        entries, self._dispatching = self._dispatching, []
        if written:
            self._queue_written(pipe, written, dispatched=entries)
        elif entries:
            self.journal.queue_put_many(pipe, entries)
            self.budget.queue_dispatch(pipe, len(entries))
        looks, self._looks_due = self._looks_due, []
        if looks:
            parse = self._queue_looks(pipe, looks, origin)
            parsed.append(lambda replies: list(zip(looks, parse(replies), strict=True)))

    def _rode(self, parsed: list[Parse[tuple[_Reads, Look]]], replies: list[Any] | BaseException) -> None:
        """The replies of :meth:`_queue_ride`'s commands: the next step's look is kept for it (not if any of them
        failed: the dispatch raises that, and the next step reads again)."""
        if isinstance(replies, BaseException) or not parsed or any(isinstance(r, Exception) for r in replies):
            return
        for reads, look in parsed[0](replies):
            self._ahead = (reads, look, self.options.clock())

    def _defer(self, written: _Written) -> None:
        """A success's writes, to ride the next dispatch (a sequential strategy's next step comes at once); if none
        is on its way when the event loop next turns, they go on their own."""
        self._deferred.append(written)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_soon is None and self._deferred:
            self._flush_soon = asyncio.get_running_loop().call_soon(self._flush_unless_riding)

    def _flush_unless_riding(self) -> None:
        self._flush_soon = None
        if self._deferred and not self._dispatching:
            task = asyncio.create_task(self._flush_deferred(), name=f"writes {self.orchestration}")
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush_deferred(self) -> None:
        written, self._deferred = self._deferred, []
        if not written:
            return
        try:
            await self._batch.run(lambda pipe: self._queue_written(pipe, written))
        except Exception as exc:  # told at the next dispatch or at the end (:meth:`settle_writes`)
            self._deferred_error = self._deferred_error or exc

    def _raise_deferred_error(self) -> None:
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error

    async def settle_writes(self) -> None:
        """Every deferred write sent (the run is ending): raises the error of one that failed."""
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        await self._flush_deferred()
        if self._flushing:
            await asyncio.gather(*self._flushing)
        self._raise_deferred_error()

    async def _wait(
        self, task: Task, agent: str, timeout_seconds: float | None, journaled: Entry | None = None
    ) -> Result | None:
        """The attempt's result, or None when none came within its timeout, or its agent left the run's scope
        meanwhile (deleted: its queue went with it, nothing will answer), or became unavailable with the task still
        queued (why is kept in ``_gone``). An attempt Redis lost (its ``journaled`` entry gone) is sent again, and
        waited for its whole timeout from then: its agent never had it."""
        info = self.info(agent) if agent in self._known else None
        timeout = timeout_seconds or (info.resilience.timeout_seconds if info else 120)

        async def bound() -> float:
            remaining = await self.budget.remaining_seconds(self.options.clock())
            return max(0.0, min(timeout + RESULT_GRACE_SECONDS, remaining))

        try:
            if self._refresh is None:  # no view of the agents to watch: wait the bound
                return await self.bus.wait_result(task, await bound())
            deadline = time.monotonic() + await bound()
            held_up: str | None = None  # why its agent could not take it, while the task waited in its queue
            while True:
                left = deadline - time.monotonic()
                poll = self.options.wake_poll_seconds
                result = await self.bus.wait_result(task, max(0.0, min(poll, left)))
                if result is None and left <= poll and held_up is not None and await self.bus.queued(task):
                    # Never started: its agent's state is why, not a timeout of its own (its breaker stays put).
                    self._gone[task.id] = f"{held_up}, while its task waited in its queue"
                if result is not None or left <= poll:
                    return result
                now = await self.availability(agent)  # the view, read again when older than refresh_seconds
                if agent not in self.directory:  # deleted (its queue went with it) or out of scope: not waited for
                    self._gone[task.id] = f"{now.reason}, while its task ran"
                    return None
                queued = now.state is not State.AVAILABLE and await self.bus.queued(task)
                if queued and not now.usable:
                    # In maintenance, scaled to zero, its replicas gone: nothing will read the queue. A replica that
                    # holds the task already is left to finish it (a drain does).
                    self._gone[task.id] = f"{now.reason}, while its task waited in its queue"
                    return None
                # Coming back (its model server restarting, a pod replaced): the run says what it waits for.
                held_up = now.reason if queued else None
                why = f"agent {agent!r} is not ready ({now.reason}): its task waits in its queue" if queued else None
                if why != self.waiting.get(task.id):
                    await self._set_waiting(task.id, why)
                if journaled is not None and await self._look_for_loss(task, journaled):
                    deadline = time.monotonic() + await bound()
        finally:
            self._release(agent)
            if task.id in self.waiting:
                await self._set_waiting(task.id, None)

    async def _look_for_loss(self, task: Task, journaled: Entry) -> bool:
        """Whether Redis lost what the run wrote (it restarted without its data: an emptyDir, no AOF), and if so
        write it back (:meth:`_restore`), and this attempt when it is lost too (its entry, which went ahead of the
        task in the same round trip, is gone and no result came); True when the attempt went out again. Not after a
        purge: a deleted run is marked cancelled on its agents before its keys go, maybe on another replica while
        the run still waits. Redis unreachable: nothing is known, nothing done."""
        try:
            own_gone, done_gone = await self.journal.gone(journaled.step)
            if not (own_gone or done_gone) or await self.bus.cancelled(task):
                return False
            lost = own_gone and await self.bus.get_result(task) is None
            await self._restore()
        except (RedisError, OSError):
            return False
        return lost and await self._resend(task, journaled)

    async def _restore(self) -> None:
        """Write back what Redis lost of what the run wrote, so a later resume neither runs its finished steps again
        nor starts a fresh budget: the finished steps' journal entries Redis no longer holds, and the run's usage.
        Says so (a warning, ``run.restored``) when there were entries to write back."""
        steps: list[str] = []

        def queue(pipe: Any) -> None:
            steps.extend(self.journal.queue_restore(pipe))
            self.budget.queue_restore(pipe)

        replies = await self._batch.run(queue)
        restored = [step for step, written in zip(steps, replies, strict=False) if written]
        if restored:
            log.warning(
                "%s: Redis lost the run's journal (restarted without its data?); wrote back %d finished steps",
                self.orchestration,
                len(restored),
            )
            await self.publish("run.restored", {"steps": restored, "why": "lost from Redis: the journal was gone"})

    async def _resend(self, task: Task, journaled: Entry) -> bool:
        """Send a lost attempt again as it was (same id and attempt: its agent never had it, or had it from a
        Redis that no longer exists), instead of waiting out its timeout for a result that cannot come; False when
        Redis refused it."""
        log.warning(
            "%s: task %s for %s was lost from Redis (restarted without its data?); sending it again",
            self.orchestration,
            task.id,
            task.agent,
        )
        try:
            await self._send(task, journaled)
        except (RedisError, OSError) as exc:  # Redis away again: the next look finds it lost still and tries again
            log.warning("%s: could not send task %s again: %s", self.orchestration, task.id, exc)
            return False
        await self.publish(
            "task.resent",
            {
                "step": journaled.step,
                "task": task.id,
                "agent": task.agent,
                "why": "lost from Redis: its journal entry was gone and no result came",
            },
        )
        return True

    def _release(self, agent: str) -> None:
        self._assigned[agent] = max(0, self._assigned.get(agent, 0) - 1)

    async def _wait_waking(
        self, task: Task, agent: str, why: Availability, timeout_seconds: float | None, journaled: Entry | None = None
    ) -> tuple[str | None, Result | None]:
        """The task went to an agent that is not up yet (queued work is what wakes an autoscaled agent): wait for
        it to come up, at most ``agent_wait_seconds``, saying so in ``waiting``; then for the result as usual.
        (why, None) when it did not come up in time or became unavailable meanwhile; (None, the result) else."""
        clock = self.options.clock
        since = clock()
        deadline = since + self.agent_wait_seconds
        bound = f"waiting up to {self.agent_wait_seconds:g}s (agentWaitSeconds)"
        await self._set_waiting(task.id, f"agent {agent!r} is not ready ({why.reason}): {bound}")
        try:
            while True:
                poll = min(self.options.wake_poll_seconds, max(0.0, deadline - clock()))
                result = await self.bus.wait_result(task, poll)
                if result is not None:  # it came up and did the work between two looks
                    self._release(agent)
                    return None, result
                now = await self.availability(agent, fresh=True)
                if now.state is State.AVAILABLE:
                    break
                if not now.usable:  # no longer worth waiting for: say so, not that the wait ran out
                    self._release(agent)
                    return f"{now.reason}; waited {clock() - since:.0f}s for it", None
                if clock() >= deadline:
                    self._release(agent)
                    return f"not ready within {self.agent_wait_seconds:g}s (agentWaitSeconds): {now.reason}", None
        finally:
            await self._set_waiting(task.id, None)
        return None, await self._wait(task, agent, timeout_seconds, journaled)

    async def _withdraw(self, task: Task) -> None:
        """Take back an attempt the run stops waiting for (it timed out, or its agent never came up), so that agent
        does not run it later, ahead of what the run sends it next; a replica that already started it finishes."""
        try:
            queued = await self.bus.withdraw(task)
        except RedisError as exc:  # it may then still run; the run goes on either way
            log.warning("%s: could not withdraw task %s from %s: %s", self.orchestration, task.id, task.agent, exc)
            return
        if queued:
            self.unsettled.pop(task.id, None)
            self.withdrawn[task.agent] = self.withdrawn.get(task.agent, 0) + 1
        step = task.meta.get("step")
        await self.publish("task.withdrawn", {"step": step, "task": task.id, "agent": task.agent, "queued": queued})

    async def _set_waiting(self, task_id: str, why: str | None) -> None:
        if why is None:
            self.waiting.pop(task_id, None)
        else:
            self.waiting[task_id] = why
        await self._report()

    async def _settle(
        self,
        step: str,
        record: TaskRecord,
        agent: str,
        task: Task,
        result: Result | None,
        validate: Validator | None,
        tried: list[str],
        sent: float,
        then: Next | None = None,
        clean: bool = False,
    ) -> Result | str:
        """Account for one attempt's outcome (dispatched at ``sent``); a Result on success, else the error text.

        ``clean``: the agent's breaker was closed with no failures when this attempt was dispatched. A success then
        changes neither that breaker nor what the next step reads (taken with this dispatch), so when a next step
        follows (``then``) its writes ride that step's dispatch instead of a round trip of their own."""
        info = self.info(agent) if agent in self._known else None
        config = info.resilience.circuit_breaker if info else None
        if result is None:
            gone = self._gone.get(task.id)
            error = f"{agent}: {gone or 'no result within the timeout'} (task {task.id})"
            await self._withdraw(task)
            if gone is not None:  # passed over, not its failure: neither its stats nor its breaker move
                self.attempts.end(task, None, error)
                record.error = error
                return error
        elif not result.ok:
            error = f"{agent}: {result.error or 'failed'}"
        else:
            invalid = validate(result.output) if validate else None
            error = f"{agent}: invalid output: {invalid}" if invalid else ""
        ok = not error
        if result is not None:
            self.unsettled.pop(task.id, None)
        self.attempts.end(task, result, error)
        if result is not None:
            record.cost += result.cost
            record.tokens += result.tokens
        # An attempt that never reported took at least as long as we waited for it.
        duration_ms = result.duration_ms if result else (self.options.clock() - sent) * 1000.0
        failure = None if ok else Failure(task.id, error, self.options.clock())
        quality = result.quality if result and result.ok else None
        outcome = Outcome(ok, duration_ms, quality, failure)
        # Every tool call of the attempt, succeeded or not, goes on the run's event stream: the run's history shows
        # what the agent called and what it was told, in order, before the step's answer.
        # They happened before the step's end: stamped now, not when they go out with its writes.
        events: list[_Event] = []
        if result is not None:
            attempt, now = result.attempt, time.time()
            for call in result.tool_calls:
                events.append(_Event(agent, TOOL_CALL_EVENT, {"step": step, "attempt": attempt, **call}, now))
        finished = self._finished(step, record, task.attempt, tried, result, None) if ok else None
        if finished is not None:
            events.append(_Event("engine", *finished[1]))
        deferred = finished is not None and then is not None and clean
        ahead = self._reads(then) if then is not None and finished is not None and not deferred else None
        written = _Written(
            agent,
            outcome,
            result.cost if result is not None else 0.0,
            result.tokens if result is not None else 0,
            config is not None and not deferred,
            finished[0] if finished is not None else None,
            events,
            ahead,
        )
        breaker, look = (None, None) if deferred else await self._write(written)
        if deferred:
            self._defer(written)
        if ahead is not None and look is not None:
            self._ahead = (ahead, look, self.options.clock())
        await self._told(events)
        # A rejected output or a throttled upstream says nothing about the agent's health: only other errors and
        # silence move its breaker (a deferred success leaves a clean one as it is).
        throttled_or_rejected = result is not None and result.error_type in ERROR_TYPES
        if config is not None and not deferred and not throttled_or_rejected:
            healthy = result is not None and result.ok
            await self.breakers.record(agent, healthy, self.options.clock(), config, seen=parse_breaker(breaker))
        if ok:
            assert result is not None
            await self._report()
            return result
        record.error = error
        return error

    async def _write(self, written: _Written) -> tuple[Any, Look | None]:
        """One attempt's result writes, sent combined with those of the run's other steps settled before the batch
        goes out (:meth:`_queue_written`); (the agent's breaker as read after them, the next step's look if asked)."""
        return await self._together(self._written, written, self._queue_written)

    def _queue_written(
        self, pipe: Any, written: Sequence[_Written], dispatched: Sequence[Entry] = ()
    ) -> Parse[tuple[Any, Look | None]]:
        """Results' writes as a few commands on the caller's pipeline: budget and stats (per agent) in a handful
        however many results there are, each agent's breaker read once, the journal entries in one command (with
        those of the ``dispatched`` tasks the writes ride ahead of, and their count), the events in order, the
        looks ahead last."""
        origin = len(pipe)  # replies are counted from here: the pipeline may hold other callers' commands
        self.budget.queue_result(pipe, sum(w.cost for w in written), sum(w.tokens for w in written))
        if dispatched:
            self.budget.queue_dispatch(pipe, len(dispatched))
        by_agent: dict[str, list[Outcome]] = {}
        for w in written:
            by_agent.setdefault(w.agent, []).append(w.outcome)
        for agent, outcomes in by_agent.items():
            self.stats.queue_records(pipe, agent, outcomes)
            self._recent.add(agent, outcomes)
        breakers: dict[str, int] = {}
        for w in written:
            if w.breaker and w.agent not in breakers:
                breakers[w.agent] = len(pipe) - origin
                self.breakers.queue_load(pipe, w.agent)
        entries = [*(w.entry for w in written if w.entry is not None), *dispatched]
        if entries:
            self.journal.queue_put_many(pipe, entries)
        for w in written:
            self._queue_events(pipe, w.events)
        ahead = [w.ahead for w in written if w.ahead is not None]
        looks = self._queue_looks(pipe, ahead, origin) if ahead else None  # the next steps' reads, after the writes

        def parse(replies: Sequence[Any]) -> list[tuple[Any, Look | None]]:
            looked = iter(looks(replies) if looks is not None else [])
            return [
                (
                    replies[breakers[w.agent]] if w.agent in breakers else None,
                    next(looked) if w.ahead is not None else None,
                )
                for w in written
            ]

        return parse

    def _queue_events(self, pipe: Any, events: Sequence[_Event]) -> None:
        """Events on the run's stream, as commands on the caller's pipeline, if the bus can queue them (else
        :meth:`_told` publishes them after)."""
        queue = getattr(self.bus, "queue_publish", None)
        if queue is not None:
            for e in events:
                queue(pipe, self.orchestration, e.type, e.payload, e.sender, at=e.at)

    async def _told(self, events: Sequence[_Event]) -> None:
        """After :meth:`_queue_events` went out: publish what the bus could not queue, and tell ``on_event`` of the
        engine's own events (as :meth:`publish` does)."""
        queued = getattr(self.bus, "queue_publish", None) is not None
        for e in events:
            if not queued:
                await self.publish_as(e.sender, e.type, e.payload)
            if e.sender == "engine" and self._on_event is not None:
                self._on_event(e.type, e.payload)

    def _finished(
        self, step: str, record: TaskRecord, attempt: int, tried: list[str], result: Result | None, error: str | None
    ) -> tuple[Entry, tuple[str, dict[str, Any]]]:
        """The step's end in the record, and what goes to Redis for it: its journal entry and task.finished event."""
        now = self.options.clock()
        entry = Entry(
            step,
            DONE,
            result.task_id if result else f"{self.uid}:{step}:{attempt}",
            result.agent if result and result.agent else (tried[-1] if tried else ""),
            attempt,
            record.kind,
            ok=result is not None,
            result=result.to_dict() if result else None,
            started_at=record.started_at or now,
            finished_at=now,
            error=error,
            history=tried,
        )
        record.state = "Succeeded" if result else "Failed"
        record.finished_at = now
        record.error = error
        if result is not None and result.agent:
            record.agent = result.agent
        event = {"step": step, "state": record.state, "agent": record.agent, "attempts": attempt}
        return entry, ("task.finished", event)

    async def _finish(
        self, step: str, record: TaskRecord, attempt: int, tried: list[str], result: Result | None, error: str | None
    ) -> None:
        entry, finished = self._finished(step, record, attempt, tried, result, error)
        events = [_Event("engine", *finished)]

        def writes(pipe: Any) -> None:
            self.journal.queue_put(pipe, entry)
            self._queue_events(pipe, events)

        await self._batch.run(writes)
        await self._told(events)
        await self._report()

    def _replay(self, entry: Entry, record: TaskRecord) -> Result:
        self.journal.keep([entry])
        record.agent, record.attempts, record.task_id = entry.agent, entry.attempt, entry.task_id
        record.started_at, record.finished_at, record.error = entry.started_at, entry.finished_at, entry.error
        if entry.ok and entry.result is not None:
            result = Result.from_dict(entry.result)
            record.state, record.cost, record.tokens = "Succeeded", result.cost, result.tokens
            return result
        record.state = "Failed"
        raise TaskFailed(entry.step, [entry.error or "failed"], self.priorities(entry.history))

    def priorities(self, names: Sequence[str]) -> list[str]:
        """The priority tiers of these agents (what losing their work means, :mod:`podium.engine.degradation`)."""
        return [self._known.get(n).priority for n in names if n in self._known]

    def progress(self) -> Progress:
        records = sorted(self.records.values(), key=lambda r: (r.started_at or float("inf"), r.step))
        done = sum(1 for r in records if r.state in FINISHED)
        return Progress(
            total=max(self.expected, len(records)),
            done=done,
            tasks=records,
            cost=sum(r.cost for r in records),
            tokens=sum(r.tokens for r in records),
            approvals=self.collab.approvals() if self.collab is not None else [],
            waiting=sorted(set(self.waiting.values())),
        )

    def skip(self, step: str, kind: str, reason: str) -> None:
        self.records[step] = TaskRecord(step=step, kind=kind, state="Skipped", error=reason)

    def cancel_unfinished(self, why: str) -> None:
        """The run ended with these steps still running (a step beside them failed it, or its time ran out): they
        end with it, and the status says so rather than showing them running in a finished run."""
        now = self.options.clock()
        for record in self.records.values():
            if record.state == "Running":
                record.state, record.error, record.finished_at = "Cancelled", why, now

    async def report(self) -> None:
        """Hand the progress to ``on_progress`` now (a wait starting or ending, not only dispatches and results)."""
        await self._report()

    async def _report(self) -> None:
        if self._on_progress is None:
            return
        outcome = self._on_progress(self.progress())
        if inspect.isawaitable(outcome):
            await outcome


def _checked(contract: Contract | None, validate: Validator | None) -> Validator | None:
    """The contract's check, then the caller's own (which may then rely on the contract's shape)."""
    if contract is None:
        return validate

    def check(output: Any) -> str | None:
        return contract.error(output) or (validate(output) if validate is not None else None)

    return check
