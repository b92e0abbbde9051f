"""Prometheus metrics of one agent replica, in a registry of its own (tests run several runtimes per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AgentMetrics:
    def __init__(self, agent: str, namespace: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"agent": agent, "namespace": namespace}
        self.tasks = Counter(
            "podium_agent_tasks",
            "Tasks finished by this replica, by outcome (ok, error, timeout, throttled, invalid)",
            ["outcome", *labels],
            registry=self.registry,
        )
        self.duration = Histogram(
            "podium_agent_task_duration_seconds",
            "Time from start to result of a task",
            list(labels),
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.in_flight = Gauge("podium_agent_in_flight", "Tasks running now", list(labels), registry=self.registry)
        self.backend_up = Gauge(
            "podium_agent_backend_up",
            "1 while the backend's upstream (an llm backend's model server) answers, 0 while it does not",
            list(labels),
            registry=self.registry,
        )
        self.tokens = Counter("podium_agent_tokens", "Model tokens used", list(labels), registry=self.registry)
        self.backend_errors = Counter(
            "podium_agent_backend_errors",
            "Tasks whose backend raised or timed out",
            list(labels),
            registry=self.registry,
        )
        self.model_tokens = Counter(
            "podium_agent_model_tokens",
            "Model tokens as the model API counts them, by type (prompt, completion)",
            ["type", *labels],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "podium_agent_model_first_token_seconds",
            "Time from sending a task's first model request to the first streamed token of its answer",
            list(labels),
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=self.registry,
        )
        self.store_retries = Counter(
            "podium_agent_result_store_retries",
            "Failed tries to store a result in Redis (each retried until it is stored)",
            list(labels),
            registry=self.registry,
        )
        self.labels = labels
        # Every series exists from the start, at 0: rates and dashboards need no `or vector(0)`.
        self.in_flight.labels(**labels).set(0)
        self.tokens.labels(**labels)
        self.backend_errors.labels(**labels)
        self.store_retries.labels(**labels)
        for outcome in ("ok", "error", "timeout", "throttled", "invalid"):
            self.tasks.labels(outcome=outcome, **labels)

    def finished(self, outcome: str, seconds: float, tokens: int) -> None:
        self.tasks.labels(outcome=outcome, **self.labels).inc()
        self.duration.labels(**self.labels).observe(seconds)
        if tokens:
            self.tokens.labels(**self.labels).inc(tokens)
        if outcome != "ok":
            self.backend_errors.labels(**self.labels).inc()

    def model_usage(self, prompt_tokens: int, completion_tokens: int, first_token_seconds: float | None) -> None:
        if prompt_tokens:
            self.model_tokens.labels(type="prompt", **self.labels).inc(prompt_tokens)
        if completion_tokens:
            self.model_tokens.labels(type="completion", **self.labels).inc(completion_tokens)
        if first_token_seconds is not None:
            self.first_token.labels(**self.labels).observe(first_token_seconds)

    def store_retried(self) -> None:
        self.store_retries.labels(**self.labels).inc()

    def set_backend_up(self, up: bool) -> None:
        self.backend_up.labels(**self.labels).set(1 if up else 0)

    def set_in_flight(self, value: int) -> None:
        self.in_flight.labels(**self.labels).set(value)
