"""The Agent kind: one specialised agent, run as a Deployment of `podium agent` replicas."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from podium.api.common import (
    CapabilityName,
    Condition,
    Model,
    Priority,
    Resource,
    RoleName,
    Rule,
    exactly_one,
    unique_names,
)


class Capability(Model):
    name: CapabilityName
    level: float = Field(default=1.0, ge=0.0, le=1.0, description="proficiency in [0, 1]")


class CommandBackend(Model):
    """Runs a program per task: task input as JSON on stdin (or as arguments); JSON or text output."""

    args: list[str] = Field(min_length=1, description="program and arguments; args[0] must be on PATH")
    input_mode: Literal["stdin", "args"] = Field(
        default="stdin", description="stdin: task JSON on stdin; args: task JSON appended as the last argument"
    )
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    env: dict[str, str] | None = None
    working_dir: str | None = None


class PythonBackend(Model):
    """Calls ``module:function`` (sync or async) with the task: the way users write custom agents."""

    entrypoint: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
        description="module:function",
    )


class SecretKeyRef(Model):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class ModelPricing(Model):
    """What the model's provider charges, per million tokens: a task's cost is its prompt and completion tokens
    at these prices (plus the Agent's pricing.perTask)."""

    input_per_million: float = Field(default=0.0, ge=0.0, description="price of 1M prompt tokens")
    output_per_million: float = Field(default=0.0, ge=0.0, description="price of 1M completion tokens")


class LLMBackend(Model):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM)."""

    model: str = Field(min_length=1)
    base_url: str = Field(alias="baseURL", pattern=r"^https?://", description="e.g. http://vllm:8000/v1")
    api_key_secret_ref: SecretKeyRef | None = None
    system_prompt: str | None = None
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    seed: int | None = Field(default=None, description="sampling seed, for repeatable answers where supported")
    frequency_penalty: float | None = Field(
        default=None, ge=-2.0, le=2.0, description="discourages repeating tokens (small models loop without it)"
    )
    max_tokens: int | None = Field(default=None, ge=1)
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    pricing: ModelPricing | None = Field(default=None, description="per-token prices of the model")


class HTTPBackend(Model):
    """POSTs the task as JSON to a URL and takes the JSON answer."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] | None = None
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)


class Backend(Model):
    command: CommandBackend | None = None
    python: PythonBackend | None = None
    llm: LLMBackend | None = None
    http: HTTPBackend | None = None

    rules = (exactly_one("command", "python", "llm", "http"),)

    @property
    def type(self) -> str:
        return next(name for name in ("command", "python", "llm", "http") if getattr(self, name) is not None)


class Backoff(Model):
    initial_seconds: float = Field(default=1.0, gt=0, le=3600)
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max_seconds: float = Field(default=30.0, gt=0, le=86400)
    jitter: bool = True

    rules = (
        Rule(
            cel="self.maxSeconds >= self.initialSeconds",
            message="backoff.maxSeconds must be >= backoff.initialSeconds",
            check=lambda m: m.max_seconds >= m.initial_seconds,
        ),
    )


class Retry(Model):
    limit: int = Field(default=3, ge=0, le=20, description="retries after the first attempt")
    backoff: Backoff = Field(default_factory=Backoff)


class CircuitBreaker(Model):
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    recovery_timeout_seconds: int = Field(default=60, ge=1, le=86400)


class Resilience(Model):
    timeout_seconds: int = Field(default=120, ge=1, le=86400, description="per-task timeout")
    retry: Retry = Field(default_factory=Retry)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)


class Pricing(Model):
    per_task: float = Field(default=0.0, ge=0.0, description="basis for market bids and cost accounting")
    per_1k_tokens: float = Field(default=0.0, ge=0.0, alias="per1kTokens")


class Autoscaling(Model):
    """The operator's built-in scaler: replicas follow the inbox backlog, down to zero if minReplicas is 0."""

    min_replicas: int = Field(default=1, ge=0, le=1000, description="floor; 0 lets an idle agent scale to zero")
    max_replicas: int = Field(ge=1, le=1000, description="ceiling")
    target_backlog_per_replica: int = Field(
        default=10, ge=1, le=1_000_000, description="undelivered + in-flight tasks one replica should carry"
    )
    scale_down_delay_seconds: int = Field(
        default=120, ge=0, le=86400, description="a lower recommendation must hold this long before scaling down"
    )

    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="autoscaling.minReplicas must be <= autoscaling.maxReplicas",
            check=lambda m: m.min_replicas <= m.max_replicas,
        ),
    )


class AgentSpec(Model):
    """An Agent: a specialised AI agent run as `podium agent` replicas that consume its task inbox."""

    role: RoleName
    description: str | None = Field(default=None, max_length=4096)
    capabilities: list[Capability] = Field(default_factory=list, max_length=64)
    backend: Backend
    replicas: int = Field(default=1, ge=0, le=1000)
    concurrency: int = Field(default=4, ge=1, le=1024, description="in-flight tasks per replica")
    priority: Priority = Priority.important
    pricing: Pricing = Field(default_factory=Pricing)
    resilience: Resilience = Field(default_factory=Resilience)
    maintenance: bool = Field(default=False, description="drain: finish in-flight work, accept nothing new")
    template: dict[str, Any] | None = Field(
        default=None, description="pod template overrides: image, resources, env, nodeSelector, ..."
    )
    autoscaling: Autoscaling | None = Field(
        default=None, description="scale on inbox backlog; when set, the operator owns spec.replicas"
    )

    rules = (unique_names("capabilities"),)

    def capability_level(self, name: str) -> float:
        return next((c.level for c in self.capabilities if c.name == name), 0.0)


class AgentPhase(StrEnum):
    initializing = "Initializing"
    ready = "Ready"
    busy = "Busy"
    degraded = "Degraded"
    error = "Error"
    maintenance = "Maintenance"
    terminating = "Terminating"


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "halfOpen"


class AgentStats(Model):
    tasks_completed: int = 0
    tasks_failed: int = 0
    success_rate: float | None = None
    average_latency_seconds: float | None = None
    average_quality: float | None = None
    recent_failures: int = 0
    recommendation: str | None = None


class AutoscalingStatus(Model):
    backlog: int = Field(default=0, ge=0, description="undelivered + in-flight tasks in the inbox")
    desired_replicas: int = Field(default=0, ge=0, description="the autoscaler's current recommendation")
    last_scale_time: str | None = Field(default=None, description="RFC 3339 time the autoscaler last scaled")


class AgentStatus(Model):
    phase: AgentPhase | None = None
    replicas: int = 0
    ready_replicas: int = 0
    ready: str | None = Field(default=None, description="readyReplicas/replicas, for kubectl get")
    selector: str | None = None
    load: float | None = Field(default=None, description="in-flight tasks / capacity, across replicas")
    breaker: BreakerState | None = None
    stats: AgentStats | None = None
    message: str | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None
    autoscaling: AutoscalingStatus | None = None


class Agent(Resource):
    kind: Literal["Agent"] = "Agent"
    spec: AgentSpec
    status: AgentStatus | None = None
