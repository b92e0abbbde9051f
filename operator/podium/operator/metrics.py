"""The operator's Prometheus metrics (served on --metrics-port)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("podium_operator_reconciles_total", "Reconcile rounds by kind and outcome", ["kind", "outcome"])
RECONCILE_SECONDS = Histogram(
    "podium_operator_reconcile_duration_seconds",
    "Time spent in one reconcile round",
    ["kind", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AGENTS = Gauge("podium_agents", "Agents by lifecycle phase", ["phase"])
BREAKER = Gauge(
    "podium_agent_breaker_state", "Circuit breaker per agent: 0 closed, 1 half-open, 2 open", ["namespace", "agent"]
)
QUEUE_DEPTH = Gauge(
    "podium_agent_queue_depth", "Tasks in an agent's inbox (waiting + in flight)", ["namespace", "agent"]
)
DEAD_LETTERS = Gauge(
    "podium_agent_dead_letters",
    "Entries in an agent's dead-letter stream (malformed or too often redelivered tasks; trimmed like other streams)",
    ["namespace", "agent"],
)
DESIRED_REPLICAS = Gauge(
    "podium_agent_autoscaler_desired_replicas",
    "Replicas the built-in backlog autoscaler wants for an agent (agents with spec.autoscaling only)",
    ["namespace", "agent"],
)
RESTARTS = Counter(
    "podium_agent_replica_restarts_total", "Replicas restarted because their heartbeat lapsed", ["namespace", "agent"]
)
TEAMS_DEGRADED = Gauge("podium_teams_degraded", "Teams whose Degraded condition is True")
CRDS_OUTDATED = Gauge(
    "podium_crds_outdated",
    "Podium CRDs installed in another version than this operator's, as read at start (apply charts/podium/crds)",
)
RUNS_FINISHED = Counter(
    "podium_orchestrations_finished_total",
    "Orchestration runs that ended, by strategy, phase (Succeeded, Failed) and reason",
    ["namespace", "strategy", "phase", "reason"],
)
RUN_SECONDS = Histogram(
    "podium_orchestration_duration_seconds",
    "Wall time of ended runs from startedAt to the end",
    ["strategy", "phase"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 10800),
)
RUN_COST = Counter(
    "podium_orchestration_cost",
    "What ended runs cost (the sum of their tasks' cost, e.g. from pricing.perTask or model usage), by strategy",
    ["namespace", "strategy"],
)
RUN_TOKENS = Counter(
    "podium_orchestration_tokens", "Model tokens ended runs used, by strategy", ["namespace", "strategy"]
)

APPROVALS_WAITING = Gauge(
    "podium_orchestration_approvals_waiting",
    "Approvals runs wait for now (their phase is AwaitingApproval), by namespace",
    ["namespace"],
)
APPROVAL_DECISIONS = Counter(
    "podium_orchestration_approval_decisions_total",
    "Approvals decided, by decision (Approved, Rejected, TimedOut)",
    ["namespace", "decision"],
)
RUN_EVENTS = Counter(
    "podium_orchestration_events_total",
    "Events runs published on their event stream (task.created, task.completed, agent.available, workflow.failed, "
    "task.no_agents_available, task.finished, run.started, run.finished, ...), by strategy and type",
    ["namespace", "strategy", "type"],
)

BREAKER_VALUE = {"closed": 0, "halfOpen": 1, "open": 2}

_waiting: dict[tuple[str, str], int] = {}  # (namespace, run) -> approvals it waits for, summed per namespace


class Outcome:
    """Mutable outcome label for :func:`timed`; defaults to success unless an exception escapes."""

    def __init__(self) -> None:
        self.value = "success"


@contextmanager
def timed(kind: str) -> Iterator[Outcome]:
    outcome = Outcome()
    start = time.perf_counter()
    try:
        yield outcome
    except Exception:
        outcome.value = "error"
        raise
    finally:
        RECONCILES.labels(kind, outcome.value).inc()
        RECONCILE_SECONDS.labels(kind, outcome.value).observe(time.perf_counter() - start)


def run_finished(namespace: str, strategy: str, phase: str, reason: str, seconds: float | None) -> None:
    RUNS_FINISHED.labels(namespace, strategy, phase, reason).inc()
    if seconds is not None:
        RUN_SECONDS.labels(strategy, phase).observe(max(0.0, seconds))


def run_spent(namespace: str, strategy: str, cost: float, tokens: int) -> None:
    """Count an ended run's spend (a zero too: the series then exists for dashboards from the first run on)."""
    RUN_COST.labels(namespace, strategy).inc(max(0.0, cost))
    RUN_TOKENS.labels(namespace, strategy).inc(max(0, tokens))


def run_event(namespace: str, strategy: str, type_: str) -> None:
    RUN_EVENTS.labels(namespace, strategy, type_).inc()


def forget_agent(namespace: str, agent: str) -> None:
    for gauge in (BREAKER, QUEUE_DEPTH, DEAD_LETTERS, DESIRED_REPLICAS):
        try:
            gauge.remove(namespace, agent)
        except KeyError:
            pass


def forget_autoscaler(namespace: str, agent: str) -> None:
    try:
        DESIRED_REPLICAS.remove(namespace, agent)
    except KeyError:
        pass


def approvals_waiting(namespace: str, run: str, count: int) -> None:
    """How many approvals one run waits for now (0 when it ended); the gauge sums them per namespace."""
    if count:
        _waiting[(namespace, run)] = count
    else:
        _waiting.pop((namespace, run), None)
    APPROVALS_WAITING.labels(namespace).set(sum(n for (ns, _), n in _waiting.items() if ns == namespace))


def approval_decided(namespace: str, decision: str) -> None:
    APPROVAL_DECISIONS.labels(namespace, decision).inc()
