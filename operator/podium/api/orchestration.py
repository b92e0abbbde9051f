"""The Orchestration kind: one run of a collaboration, by one of seven strategies."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from podium.api.common import (
    AgentName,
    CapabilityName,
    Condition,
    LabelSelector,
    Model,
    Resource,
    RoleName,
    Rule,
    TaskName,
    exactly_one,
    unique_names,
)


class Strategy(StrEnum):
    hierarchical = "hierarchical"
    pipeline = "pipeline"
    swarm = "swarm"
    event_driven = "eventDriven"
    central_command = "centralCommand"
    peer_to_peer = "peerToPeer"
    market = "market"


class ConflictResolution(StrEnum):
    timestamp = "timestamp"
    priority = "priority"
    consensus = "consensus"
    merge = "merge"


class Target(Model):
    """Who does a piece of work: one named agent, or any agent with a role or a capability."""

    agent: AgentName | None = None
    role: RoleName | None = None
    capability: CapabilityName | None = None

    rules = (exactly_one("agent", "role", "capability"),)


# ---------------------------------------------------------------------------------------------- pipeline
class Validation(Model):
    json_schema: dict[str, Any] = Field(description="JSON Schema the stage output must satisfy")


class Stage(Target):
    name: TaskName
    input: Any = Field(default=None, description="extra input merged with the previous stage's output")
    validate_: Validation | None = Field(default=None, alias="validate")
    retries: int = Field(default=2, ge=0, le=10, description="retries of this stage before the fallback")
    fallback: AgentName | None = None


class PipelineSpec(Model):
    stages: list[Stage] = Field(min_length=1, max_length=64)

    rules = (unique_names("stages"),)


# ---------------------------------------------------------------------------------------------- hierarchical
class HierarchicalSpec(Model):
    coordinator: AgentName | None = Field(default=None, description="plans and integrates; default: team lead")
    teams: list[AgentName] = Field(min_length=1, max_length=32, description="Teams that work in parallel")
    research_role: RoleName = "researcher"
    analysis_role: RoleName = "analyzer"
    synthesis_role: RoleName = Field(default="synthesizer", description="merges a team's work; default: lead")


# ---------------------------------------------------------------------------------------------- swarm
class Convergence(Model):
    threshold: float = Field(default=0.01, ge=0.0, le=1.0, description="improvement below this counts as none")
    patience: int = Field(default=2, ge=1, le=100, description="generations without improvement before stopping")


class SwarmSpec(Model):
    explorer_role: RoleName = "explorer"
    evaluator: AgentName | None = None
    evaluator_role: RoleName = "evaluator"
    max_generations: int = Field(default=5, ge=1, le=1000)
    top_k: int = Field(default=3, ge=1, le=100, description="best solutions shared as knowledge")
    target_score: float | None = Field(default=None, ge=0.0, le=1.0, description="stop once reached")
    convergence: Convergence = Field(default_factory=Convergence)


# ---------------------------------------------------------------------------------------------- eventDriven
class EventTask(Model):
    name: TaskName
    agents: list[AgentName] | None = Field(default=None, min_length=1, max_length=32)
    role: RoleName | None = None
    capability: CapabilityName | None = None
    fan_out: bool = Field(default=False, description="with role/capability: send to every matching agent")
    input: Any = None
    depends_on: list[TaskName] = Field(default_factory=list, max_length=32)

    rules = (exactly_one("agents", "role", "capability"),)


def _acyclic(tasks: list[EventTask]) -> bool:
    deps = {t.name: set(t.depends_on) for t in tasks}
    done: set[str] = set()
    while True:
        ready = {n for n, d in deps.items() if n not in done and d <= done}
        if not ready:
            return len(done) == len(deps)
        done |= ready


class EventDrivenSpec(Model):
    tasks: list[EventTask] = Field(min_length=1, max_length=64)
    synthesizer: AgentName | None = None

    rules = (
        unique_names("tasks"),
        Rule(
            cel="self.tasks.all(t, !has(t.dependsOn) || t.dependsOn.all(d, self.tasks.exists(u, u.name == d)))",
            message="every dependsOn entry must name a task of this orchestration",
            check=lambda m: all(d in {u.name for u in m.tasks} for t in m.tasks for d in t.depends_on),
        ),
    )

    @model_validator(mode="after")
    def _no_cycles(self) -> Self:
        # CEL cannot walk a graph; the operator reports this through the same message in a condition.
        if not _acyclic(self.tasks):
            raise ValueError("tasks.dependsOn has a cycle")
        return self


# ---------------------------------------------------------------------------------------------- centralCommand
class AssignmentWeights(Model):
    capability: float = Field(default=0.5, ge=0.0, le=1.0)
    performance: float = Field(default=0.3, ge=0.0, le=1.0)
    load: float = Field(default=0.2, ge=0.0, le=1.0)

    rules = (
        Rule(
            cel="self.capability + self.performance + self.load > 0.0",
            message="at least one weight must be positive",
            check=lambda m: m.capability + m.performance + m.load > 0,
        ),
    )


class PlannedTask(Model):
    name: TaskName
    description: str | None = Field(default=None, max_length=4096, description="what the task is, for its agent")
    input: Any = None
    capabilities: list[CapabilityName] = Field(default_factory=list, max_length=16)


class CentralCommandSpec(Model):
    planner: AgentName | None = Field(default=None, description="plans the tasks; default: team lead")
    tasks: list[PlannedTask] | None = Field(default=None, max_length=64, description="given: no planning")
    weights: AssignmentWeights = Field(default_factory=AssignmentWeights)


# ---------------------------------------------------------------------------------------------- peerToPeer
class PeerToPeerSpec(Model):
    max_rounds: int = Field(default=5, ge=1, le=1000)
    convergence_threshold: float = Field(default=0.01, ge=0.0, le=1.0)
    apply_top: int = Field(default=1, ge=1, le=100, description="best proposals applied per round")
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="mean review score needed to apply")


# ---------------------------------------------------------------------------------------------- market
class BidWeights(Model):
    price: float = Field(default=0.3, ge=0.0, le=1.0)
    capability: float = Field(default=0.4, ge=0.0, le=1.0)
    reputation: float = Field(default=0.2, ge=0.0, le=1.0)
    time: float = Field(default=0.1, ge=0.0, le=1.0)

    rules = (
        Rule(
            cel="self.price + self.capability + self.reputation + self.time > 0.0",
            message="at least one weight must be positive",
            check=lambda m: m.price + m.capability + m.reputation + m.time > 0,
        ),
    )


class MarketTask(PlannedTask):
    max_price: float | None = Field(default=None, ge=0.0)


class MarketSpec(Model):
    tasks: list[MarketTask] | None = Field(default=None, max_length=64, description="default: one task of input")
    weights: BidWeights = Field(default_factory=BidWeights)
    reserve_price: float | None = Field(default=None, ge=0.0, description="highest acceptable price")
    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="lowest acceptable bid score")
    relax_factor: float = Field(default=1.5, ge=1.0, le=10.0, description="re-auction: reserve x f, minScore / f")
    bid_timeout_seconds: int = Field(default=30, ge=1, le=3600)


# ---------------------------------------------------------------------------------------------- spec
class Limits(Model):
    timeout_seconds: int = Field(default=3600, ge=1, le=7 * 86400)
    max_tasks: int = Field(default=1000, ge=1, le=1_000_000)
    max_cost: float | None = Field(default=None, ge=0.0)
    max_tokens: int | None = Field(default=None, ge=0)


STRATEGY_BLOCKS: dict[str, str] = {
    "hierarchical": "hierarchical",
    "pipeline": "pipeline",
    "swarm": "swarm",
    "eventDriven": "event_driven",
    "centralCommand": "central_command",
    "peerToPeer": "peer_to_peer",
    "market": "market",
}
REQUIRED_BLOCKS = ("hierarchical", "pipeline", "eventDriven")


def _block_matches(wire: str, attr: str) -> Rule:
    return Rule(
        cel=f"!has(self.{wire}) || self.strategy == '{wire}'",
        message=f"spec.{wire} is only allowed when strategy is {wire}",
        check=lambda m: getattr(m, attr) is None or m.strategy == wire,
    )


def _block_required(wire: str) -> Rule:
    attr = STRATEGY_BLOCKS[wire]
    return Rule(
        cel=f"self.strategy != '{wire}' || has(self.{wire})",
        message=f"strategy {wire} needs a spec.{wire} block",
        check=lambda m: m.strategy != wire or getattr(m, attr) is not None,
    )


class OrchestrationSpec(Model):
    """An Orchestration: one run of a collaboration between agents, by the strategy it names."""

    strategy: Strategy
    team: AgentName | None = Field(default=None, description="Team whose members do the work")
    agent_selector: LabelSelector | None = Field(
        default=None, description="agents to use instead of a team; neither: every Agent in the namespace"
    )
    input: Any = Field(default=None, description="free JSON handed to the first tasks")
    hierarchical: HierarchicalSpec | None = None
    pipeline: PipelineSpec | None = None
    swarm: SwarmSpec | None = None
    event_driven: EventDrivenSpec | None = None
    central_command: CentralCommandSpec | None = None
    peer_to_peer: PeerToPeerSpec | None = None
    market: MarketSpec | None = None
    limits: Limits = Field(default_factory=Limits)
    conflict_resolution: ConflictResolution = ConflictResolution.merge
    suspend: bool = False

    rules = (
        Rule(
            cel="!(has(self.team) && has(self.agentSelector))",
            message="set team or agentSelector, not both",
            check=lambda m: m.team is None or m.agent_selector is None,
        ),
        *(_block_matches(wire, attr) for wire, attr in STRATEGY_BLOCKS.items()),
        *(_block_required(wire) for wire in REQUIRED_BLOCKS),
    )

    def block(self) -> Model | None:
        """The settings block of the chosen strategy (None: its defaults apply)."""
        value: Model | None = getattr(self, STRATEGY_BLOCKS[str(self.strategy)])
        return value


class OrchestrationPhase(StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    suspended = "Suspended"


TaskState = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped"]


class TaskStatus(Model):
    id: str
    name: str | None = None
    kind: str | None = None
    agent: str | None = None
    state: TaskState
    attempts: int = 0
    started_at: str | None = None
    completed_at: str | None = None
    error: str | None = Field(default=None, max_length=4096)


class OrchestrationStatus(Model):
    phase: OrchestrationPhase | None = None
    progress: str | None = Field(default=None, description="done/total tasks")
    tasks_done: int = 0
    tasks_total: int = 0
    tasks: list[TaskStatus] | None = Field(default=None, max_length=100, description="most recent tasks")
    result: Any = Field(default=None, description="inline when small")
    result_ref: str | None = Field(default=None, description="where a large result is stored")
    cost: float = 0.0
    tokens: int = 0
    degraded: bool = False
    message: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class Orchestration(Resource):
    kind: Literal["Orchestration"] = "Orchestration"
    spec: OrchestrationSpec
    status: OrchestrationStatus | None = None
