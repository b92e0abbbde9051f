"""The Agent kind: one specialised agent, run as a Deployment of `podium agent` replicas."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from podium.api.a2a import A2ABackend, A2AServer
from podium.api.collab import AgentBlackboard, MessageType
from podium.api.common import (
    CapabilityName,
    Condition,
    Model,
    Priority,
    Resource,
    RoleName,
    Rule,
    SecretKeyRef,
    exactly_one,
    unique_names,
)
from podium.api.memory import Memory
from podium.api.tools import Tools


class Capability(Model):
    """A skill of the agent and how good it is at it."""

    name: CapabilityName
    """The skill, e.g. `python` or `security` (lowercase letters, digits, `-`, `_` and `.`). Work aimed at a
    capability (a pipeline stage's or an eventDriven task's `capability`, the `capabilities` of a centralCommand
    or market task) goes only to agents that list it."""
    level: float = Field(default=1.0, ge=0.0, le=1.0)
    """Proficiency from 0 (none) to 1 (expert). When several agents could take a task, its capability match
    (the mean level over the capabilities the task needs) weighs 0.5 of an agent's score. An agent with level 0
    is never chosen by centralCommand or market for tasks that need only this capability."""


class CommandBackend(Model):
    """Runs a program once per task in the agent's container: the task input goes to its stdin (or its last
    argument), and its stdout is the output: parsed as JSON when it is JSON, else kept as text. A non-zero exit
    fails the attempt with the tail of stderr."""

    args: list[str] = Field(min_length=1)
    """The program and its arguments, run without a shell (no globbing, no `$VAR` expansion). `args[0]` must be
    on the container's PATH or an executable path; if not, the agent exits at start-up with code 1."""
    input_mode: Literal["stdin", "args"] = "stdin"
    """How the task input reaches the program. stdin: written to its standard input. args: appended as one last
    argument, with stdin empty. Either way a string input goes as it is (so linters can read source text) and
    anything else as JSON."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    """Upper limit in seconds for one run of the program; the task's own timeout (resilience.timeoutSeconds)
    applies when it is lower. Unset: only the task's timeout applies. On timeout the program's whole process group
    gets SIGTERM, then SIGKILL 2 s later, and the attempt fails with `timed out after Ns`."""
    env: dict[str, str] | None = None
    """Extra environment variables for the program, added to the agent container's environment.
    PODIUM_TASK_ID, PODIUM_TASK_KIND, PODIUM_TASK_ATTEMPT and PODIUM_ORCHESTRATION are always set for the task
    and win over entries of the same name."""
    working_dir: str | None = None
    """Directory the program starts in. Unset: the agent process's own working directory. A directory that does
    not exist fails every attempt."""


class PythonBackend(Model):
    """Calls a Python function in the agent process for each task: the way to write a custom agent."""

    entrypoint: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
    )
    """`module:function`, e.g. `mypkg.agents:review`. The module must be importable in the agent image; if
    not, the agent exits at start-up with code 1. The function receives the task (kind, input, id, meta) and
    returns the output, or an envelope `{output, quality, tokens, cost}`. An `async def` runs on the agent's event
    loop and is cancelled on timeout; a plain function runs in a worker thread whose result is dropped on
    timeout (the thread itself runs on)."""


# The variable an llm Agent's pods read their API key from: the operator fills it from `apiKeySecretRef`.
LLM_API_KEY_ENV = "PODIUM_LLM_API_KEY"


class ModelPricing(Model):
    """What the model's provider charges, per million tokens: a task's cost is its prompt and completion tokens
    at these prices (plus the Agent's pricing.perTask)."""

    input_per_million: float = Field(default=0.0, ge=0.0)
    """Price of one million prompt tokens, in the run's cost unit (the same as maxCost). 0: prompts are free."""
    output_per_million: float = Field(default=0.0, ge=0.0)
    """Price of one million completion tokens, in the run's cost unit. 0: completions are free."""


class LLMBackend(Model):
    """Sends each task to an OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp,
    LiteLLM): a system prompt, then the task's content as readable text with an instruction made from the output
    contract of the task's kind. The contract's JSON Schema is sent as `response_format` (falling back to
    `json_object` and then plain instructions where the server refuses it); the answer is validated against it and
    re-asked once with the validation error before the attempt fails. Prompt and completion tokens come from
    `usage`, the cost from `pricing` (docs/agent-runtime.md)."""

    model: str = Field(min_length=1)
    """Model name sent with every request, e.g. `gpt-4o-mini`, or the name a local server loaded."""
    base_url: str = Field(alias="baseURL", pattern=r"^https?://")
    """Base URL of the API, e.g. `http://vllm:8000/v1`; requests go to `<baseURL>/chat/completions` (a URL
    that already ends in `/chat/completions` is used as it is). An unreachable endpoint or an HTTP status of 400 or
    more fails the attempt, naming the URL."""
    api_key_secret_ref: SecretKeyRef | None = None
    """The Secret key that holds the API key, sent as `Authorization: Bearer <key>`: the operator puts it in
    the agent pods' environment (PODIUM_LLM_API_KEY, from the Secret, never in the pod spec). Unset: requests
    carry no Authorization header (fine for local servers)."""
    system_prompt: str | None = None
    """System message sent before every task. Unset: no system message."""
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    """Sampling temperature sent with every request; 0 makes answers as repeatable as the server allows."""
    seed: int | None = None
    """Sampling seed sent with every request, for repeatable answers where the server supports it (llama.cpp,
    vLLM, OpenAI). Unset: the server's own."""
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    """Penalty on tokens by how often they already appear (`frequency_penalty` of the request); small models loop
    without one (0.5 works well for SmolLM2). Unset: the server's default."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Most tokens the model may generate per answer (`max_tokens` of the request). Unset: the server's own
    limit."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    """Upper limit in seconds for one request; the task's own timeout (resilience.timeoutSeconds) applies when
    it is lower. Unset: only the task's timeout applies."""
    pricing: ModelPricing | None = None
    """Prices of the model's tokens, for the task's cost (counted against the run's maxCost). Unset: the
    Agent's spec.pricing alone prices the task."""


class HTTPBackend(Model):
    """POSTs each task as JSON (id, kind, input, namespace, agent, orchestration, attempt, meta) to a URL; the
    JSON answer is the output, or an envelope `{output, quality, tokens, cost}`. An answer that is not JSON, an
    unreachable URL or a status of 400 or more fails the attempt."""

    url: str = Field(pattern=r"^https?://")
    """Where tasks are posted; must start with `http://` or `https://`."""
    headers: dict[str, str] | None = None
    """Extra HTTP headers sent with every request, e.g. an Authorization header."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    """Upper limit in seconds for one request; the task's own timeout (resilience.timeoutSeconds) applies when
    it is lower. Unset: only the task's timeout applies."""


BACKEND_TYPES = ("command", "python", "llm", "http", "a2a")


class Backend(Model):
    """What does the agent's work: exactly one of command, python, llm, http or a2a (the API server checks it).
    Changing the backend rolls the agent's pods."""

    command: CommandBackend | None = None
    python: PythonBackend | None = None
    llm: LLMBackend | None = None
    http: HTTPBackend | None = None
    a2a: A2ABackend | None = None

    rules = (exactly_one(*BACKEND_TYPES),)

    @property
    def type(self) -> str:
        return next(name for name in BACKEND_TYPES if getattr(self, name) is not None)


class Backoff(Model):
    """The wait before each retry on the same agent, up to `maxSeconds`: with retry.policy exponential retry n
    waits min(maxSeconds, initialSeconds x factor^(n-1)) seconds, with linear min(maxSeconds, initialSeconds x n);
    less with jitter."""

    initial_seconds: float = Field(default=1.0, gt=0, le=3600)
    """Wait before the first retry, in seconds."""
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    """How much each wait grows over the one before (exponential policy only); 1 keeps every wait at
    initialSeconds."""
    max_seconds: float = Field(default=30.0, gt=0, le=86400)
    """Longest wait, in seconds; must be at least initialSeconds (the API server checks it)."""
    jitter: bool = True
    """True: each wait is drawn at random between half the computed wait and all of it, so the retries of many
    tasks spread out. False: exactly the computed wait."""

    rules = (
        Rule(
            cel="self.maxSeconds >= self.initialSeconds",
            message="backoff.maxSeconds must be >= backoff.initialSeconds",
            check=lambda m: m.max_seconds >= m.initial_seconds,
        ),
    )


class Retry(Model):
    """How often a failed task is tried again on this agent before the next suitable agent gets it."""

    limit: int = Field(default=3, ge=0, le=20)
    """Retries on this agent after a task's first attempt fails, so the agent gets at most limit + 1 attempts;
    0 means a single attempt. An attempt fails on an error, on a timeout, or when a pipeline stage's validate
    schema rejects its output. With its attempts used up (or its circuit breaker open) the task goes to the next
    agent that may do it (another agent of the role or capability, a fallback), where that agent's own limit
    applies, and fails once none is left. A pipeline stage's retries
    replaces this limit for that stage; market bids are never retried. Every attempt counts against the
    orchestration's limits.maxTasks."""
    policy: Literal["exponential", "linear"] = "exponential"
    """How the wait between retries grows. exponential: by backoff.factor each time (1 s, 2 s, 4 s, ... with the
    defaults). linear: by backoff.initialSeconds each time (1 s, 2 s, 3 s, ...). Either way at most
    backoff.maxSeconds; a throttled attempt (429/503 with Retry-After) waits at least what its server asked."""
    backoff: Backoff = Field(default_factory=Backoff)


class CircuitBreaker(Model):
    """Stops sending work to an agent that keeps failing, then tests its recovery. The engine keeps one breaker
    per agent in Redis, shared by every run of the namespace: fed by task attempts and checked before every
    dispatch (an open breaker sends the task to the next suitable agent). The operator shows it in status.breaker
    and `kubectl get agents` (open or half-open: phase Degraded, condition Degraded reason BreakerOpen or
    BreakerHalfOpen) and as the metric podium_agent_breaker_state."""

    failure_threshold: int = Field(default=5, ge=1, le=1000)
    """Failed attempts in a row that open the breaker: errors and timeouts; a success resets the count, and
    outputs rejected by validation and throttled attempts (429/503 with Retry-After) do not count. 1 opens on the
    first failure."""
    recovery_timeout_seconds: int = Field(default=60, ge=1, le=86400)
    """Seconds an open breaker waits before letting work through again: the first task after that is a single
    probe (the breaker is half-open, no other task goes to the agent meanwhile); its success closes the breaker,
    its failure opens it for another full timeout, and a probe that never reports frees the breaker after one more
    timeout."""


class Resilience(Model):
    """Timeouts, retries and circuit breaking for this agent's tasks."""

    timeout_seconds: int = Field(default=120, ge=1, le=86400)
    """How long one attempt at a task may run, in seconds. The replica stops the work then (a backend's own
    timeoutSeconds may stop it earlier) and reports `timed out after Ns`; the engine waits 5 s longer for that
    report, then counts the attempt as failed. The agent pods' terminationGracePeriodSeconds is this plus 5 s
    (at least 30, at most 3600)."""
    retry: Retry = Field(default_factory=Retry)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)


class Pricing(Model):
    """What the agent's work costs: each task's cost, counted against an orchestration's limits.maxCost, and
    the agent's price in market auctions. Any currency unit, as long as limits.maxCost uses the same one."""

    per_task: float = Field(default=0.0, ge=0.0)
    """Price of one task attempt, and the price the agent bids in market auctions (bids themselves are free).
    A backend that reports a cost of its own replaces perTask + tokens for that task."""
    per_1k_tokens: float = Field(default=0.0, ge=0.0, alias="per1kTokens")
    """Price per 1000 tokens the backend reports (the llm backend reports the model's usage), added to perTask.
    0: tokens are still counted against limits.maxTokens but cost nothing."""


class PerformanceTargets(Model):
    """What the agent's track record (status.stats) is held to: status.stats.recommendation names the first
    target it misses, checked in this order, else says the agent performs within acceptable parameters."""

    min_success_rate: float = Field(default=0.8, ge=0.0, le=1.0)
    """Lowest acceptable success rate (attempts succeeded over attempts). Below it the recommendation is `Agent
    requires attention - high failure rate`."""
    max_average_seconds: float = Field(default=30.0, gt=0.0, le=86400.0)
    """Highest acceptable mean duration of an attempt, in seconds. Above it: `Agent performance is slow -
    consider optimization`."""
    min_quality: float = Field(default=0.7, ge=0.0, le=1.0)
    """Lowest acceptable mean quality, from 0 to 1, of the successful attempts that reported one. Below it:
    `Agent output quality is below threshold`."""


class Autoscaling(Model):
    """The operator's built-in autoscaler: replicas follow the inbox backlog (tasks waiting plus in flight),
    read every health round (PODIUM_HEALTH_INTERVAL_SECONDS). It scales up at once and down only after
    scaleDownDelaySeconds, by patching spec.replicas through the scale subresource (Events ScaledUp, ScaledDown).
    While it is set the autoscaler owns spec.replicas: do not also point an HPA or KEDA at the Agent, and in
    maintenance it leaves the count alone. Remove it to hand spec.replicas back."""

    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest replicas. 0 lets an idle Agent run no pods: its first queued task wakes it, since any backlog gets
    at least one replica, and a run that sent it waits for it up to its agentWaitSeconds."""
    max_replicas: int = Field(ge=1, le=1000)
    """Most replicas; at least minReplicas (the API server checks it)."""
    target_backlog_per_replica: int = Field(default=10, ge=1, le=1_000_000)
    """Backlog one replica should carry: the autoscaler wants ceil(backlog / this) replicas, within minReplicas
    and maxReplicas. A value above concurrency leaves tasks waiting in the inbox even at full scale."""
    scale_down_delay_seconds: int = Field(default=120, ge=0, le=86400)
    """How long a lower recommendation must hold before replicas go down: the count falls only to the highest
    recommendation seen within this window, so a backlog that drains for a moment does not make replicas flap.
    0 scales down at once. After an operator restart its last decision counts as just made."""

    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="autoscaling.minReplicas must be <= autoscaling.maxReplicas",
            check=lambda m: m.min_replicas <= m.max_replicas,
        ),
    )


class AgentSpec(Model):
    """What the agent is and how it runs: its role and capabilities, the backend that does its work, how many
    replicas, and how its tasks are retried, priced and ranked."""

    role: RoleName
    """What the agent does, e.g. `researcher` or `reviewer` (lowercase letters, digits, `-`, `_` and `.`).
    Orchestrations pick agents by role (a stage's or task's `role`, the hierarchical research, analysis and
    synthesis roles, the swarm's explorer and evaluator roles), and planners see it in their roster."""
    description: str | None = Field(default=None, max_length=4096)
    """What the agent is for, in words for people; Podium does not act on it."""
    capabilities: list[Capability] = Field(default_factory=list, max_length=64)
    """What the agent is good at, each with a level; names must be unique. Empty: the agent can still be chosen
    by name or role, but not for work that asks for a capability."""
    backend: Backend
    replicas: int = Field(default=1, ge=0, le=1000)
    """Number of `podium agent` pods; they all consume the Agent's one inbox. 0 runs no pods: the Agent is Ready
    (reason ScaledToZero) but unavailable, and runs pass it over (a critical one fails them), unless autoscaling is
    set: then a run's task wakes it and the run waits for it (the Orchestration's agentWaitSeconds). This is the
    scale subresource, so `kubectl scale` and an HPA set it; with autoscaling set, the operator's autoscaler
    does."""
    concurrency: int = Field(default=4, ge=1, le=1024)
    """Tasks one replica runs at the same time; a replica takes no more from the inbox than it can start.
    status.load is in-flight tasks over concurrency x replicas, and the Agent shows Busy from 0.8."""
    priority: Priority = Priority.important
    pricing: Pricing = Field(default_factory=Pricing)
    resilience: Resilience = Field(default_factory=Resilience)
    performance: PerformanceTargets = Field(default_factory=PerformanceTargets)
    maintenance: bool = False
    """Drain the agent without deleting it: each replica finishes its in-flight tasks, takes no new ones and
    fails /readyz, while tasks already queued wait in the inbox. Runs pass the agent over (a critical one fails
    them). Phase Maintenance; pods are not restarted, and the autoscaler leaves replicas alone. False resumes the
    work."""
    template: dict[str, Any] | None = None
    """Overrides for the agent pods, in the Kubernetes Pod and Container shapes. Container: image,
    imagePullPolicy, resources, env (merged by name; PODIUM_AGENT_NAME, PODIUM_NAMESPACE, PODIUM_REDIS_USERNAME
    and PODIUM_REDIS_PASSWORD cannot be overridden), envFrom, volumeMounts (added), command, args, workingDir. Pod:
    nodeSelector, tolerations, affinity, serviceAccountName, priorityClassName, imagePullSecrets, volumes (added),
    topologySpreadConstraints, terminationGracePeriodSeconds, runtimeClassName. Metadata: labels and annotations
    (merged; the operator's own keys win). Any other key is refused: phase Error, condition Ready reason
    InvalidSpec naming it, while the last valid Deployment keeps running. Unset: the operator's agent image and
    defaults."""
    autoscaling: Autoscaling | None = None
    """Turns on the built-in backlog autoscaler. Unset: replicas stays where the manifest, `kubectl scale` or an
    HPA put it."""
    a2a: A2AServer | None = None
    """Serves the Agent over the A2A protocol as well (docs/a2a.md). Unset: it takes work only from its inbox."""
    blackboard: AgentBlackboard | None = None
    subscriptions: list[MessageType] = Field(default_factory=list, max_length=64)
    """Message types this agent receives in the runs it works in: messages published by the strategy (e.g.
    `task.finished`), by other agents (`messages` in their answers) and by people (`podium run broadcast`). Each
    comes with the agent's next task of that run (task.context.messages); a type ending in `*` is a prefix, `*`
    alone every type. Empty: no messages."""
    message_tasks: bool = False
    """True declares that the agent handles tasks of kind `message`: a message it subscribed to that arrives
    while it has no task of that run gets delivered at once, as a `message` task (input `{messages}`), instead of
    waiting for its next task. Its answer may write state and publish messages like any other."""

    tools: Tools | None = None
    """MCP servers whose tools the agent's model may call during a task, and the bounds of its tool loop. Needs
    backend.llm. Unset: no tools."""
    memory: Memory | None = None
    """What the agent remembers of its earlier tasks (llm backend). Unset: its own turns within a run, up to 256
    tokens, and nothing across runs."""

    rules = (
        unique_names("capabilities"),
        Rule(
            cel="!has(self.tools) || has(self.backend.llm)",
            message="spec.tools needs backend.llm: the llm backend runs the tool loop",
            check=lambda m: m.tools is None or m.backend.llm is not None,
        ),
    )

    def capability_level(self, name: str) -> float:
        return next((c.level for c in self.capabilities if c.name == name), 0.0)


class AgentPhase(StrEnum):
    """Where the Agent is, the first that applies:

    - Terminating: being deleted.
    - Error: the spec cannot be applied (message says why); the last valid workload keeps running.
    - Maintenance: spec.maintenance is true; replicas drain.
    - Degraded: the breaker is not closed, a replica crashed or lost its heartbeat (until every replica is ready
      again), or every replica was lost after having been up.
    - Initializing: its Deployment is not created yet, or no replica has become ready yet.
    - Busy: load is 0.8 or more.
    - Ready: serving; also at 0 replicas (condition Ready reason ScaledToZero): runs pass it over unless
      autoscaling wakes it.
    """

    initializing = "Initializing"
    ready = "Ready"
    busy = "Busy"
    degraded = "Degraded"
    error = "Error"
    maintenance = "Maintenance"
    terminating = "Terminating"


class BreakerState(StrEnum):
    """closed: work flows. open: failures reached failureThreshold; work is held back until
    recoveryTimeoutSeconds have passed. halfOpen: testing whether the agent has recovered."""

    closed = "closed"
    open = "open"
    half_open = "halfOpen"


class FailureRecord(Model):
    """One failed attempt: which task, why, when."""

    task: str
    """Task id of the attempt: `<orchestration uid>:<step>:<attempt>`."""
    error: str = Field(max_length=1024)
    """Why it failed, as the engine recorded it (the agent's error, a rejected output, or the timeout)."""
    time: str
    """When the attempt ended (RFC 3339)."""


class AgentStats(Model):
    """The agent's track record over every orchestration in its namespace, kept by the engine in Redis and
    copied here each health round; absent until the agent has run a task. Counts are per attempt: a task tried
    three times counts three times."""

    tasks_completed: int = 0
    """Attempts that succeeded."""
    tasks_failed: int = 0
    """Attempts that failed: errors, timeouts and outputs rejected by validation."""
    success_rate: float | None = None
    """tasksCompleted / (tasksCompleted + tasksFailed), from 0 to 1."""
    average_latency_seconds: float | None = None
    """Mean duration of an attempt in seconds, as the replicas measured it; an attempt that never reported counts
    with the time the engine waited for it."""
    average_quality: float | None = None
    """Mean quality, from 0 to 1, of the successful attempts that reported one (a backend's `quality`, or a
    `quality` number in an llm answer); absent while none has."""
    recent_failures: list[FailureRecord] | None = Field(default=None, max_length=5)
    """The last five failed attempts, newest first."""
    recommendation: str | None = None
    """A one-line verdict against spec.performance, the first that applies: `no data yet`; `Agent requires
    attention - high failure rate` (success rate under minSuccessRate); `Agent performance is slow - consider
    optimization` (mean duration over maxAverageSeconds); `Agent output quality is below threshold` (mean quality
    under minQuality); else `Agent performing within acceptable parameters`. Each with the figures."""


class BreakerStatus(Model):
    """The engine's circuit breaker for this agent, as every run of the namespace shares it."""

    state: BreakerState = BreakerState.closed
    failures: int = Field(default=0, ge=0)
    """Failed attempts in a row counted toward resilience.circuitBreaker.failureThreshold."""
    opened_at: str | None = None
    """When the breaker last opened (RFC 3339); absent while it has not."""


class AutoscalingStatus(Model):
    """What the built-in autoscaler saw and decided in its last round; present while spec.autoscaling is set."""

    backlog: int = Field(default=0, ge=0)
    """Tasks in the inbox at the last round: waiting plus in flight."""
    desired_replicas: int = Field(default=0, ge=0)
    """The replicas the autoscaler decided on, which it wrote to spec.replicas."""
    last_scale_time: str | None = None
    """When the autoscaler last changed spec.replicas (RFC 3339); absent until it first does."""


class AgentStatus(Model):
    """What the operator observes of the Agent, refreshed every health round (PODIUM_HEALTH_INTERVAL_SECONDS)
    and written only when something changed."""

    phase: AgentPhase | None = None
    replicas: int = 0
    """Pods the Agent's Deployment has now; the scale subresource's status replicas, which an HPA reads."""
    ready_replicas: int = 0
    """Pods that pass /readyz: Redis reachable, backend started, neither draining nor in maintenance."""
    ready: str | None = None
    """Ready pods over desired pods, e.g. `2/3`, as `kubectl get` shows it."""
    selector: str | None = None
    """Label selector of the Agent's pods (`podium.dev/agent=<name>`), published through the scale
    subresource so an HPA can find the pods to measure."""
    load: float | None = None
    """In-flight tasks over capacity (concurrency x replicas that heartbeat), from 0 (idle) to 1 (full). 0 with
    no replicas; absent while no replica heartbeats."""
    breaker: BreakerStatus | None = None
    """The circuit breaker the engine checks before dispatching to this agent (see
    spec.resilience.circuitBreaker): state, consecutive failures, when it opened."""
    stats: AgentStats | None = None
    message: str | None = None
    """Why the Agent is not fine, in one line: the spec error in phase Error, else the message of the Degraded
    condition; absent when all is well."""
    conditions: list[Condition] | None = None
    """Ready, Available and Degraded; e.g. Ready reason ScaledToZero, Degraded reason HeartbeatLost or
    BreakerOpen, Available and Degraded reason ReplicasCrashing or ReplicasCannotStart (no replica will be ready by
    waiting: the message says why) or BackendUnavailable (the replicas run but their backend's upstream, an llm
    Agent's model server, does not answer: the message names the replica and why), then BackendRecovering (it
    answers again; the replicas are passing their readiness probes again)."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed for; older than the Agent's generation while a change
    has not been reconciled yet."""
    autoscaling: AutoscalingStatus | None = None


class Agent(Resource):
    """An Agent: one specialised AI agent (a role, capabilities and a backend that does the work), run by the
    operator as a Deployment of `podium agent` replicas that consume the Agent's task inbox in Redis."""

    kind: Literal["Agent"] = "Agent"
    spec: AgentSpec
    status: AgentStatus | None = None
