"""The Orchestration kind: one run of a collaboration, by one of seven strategies."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from podium.api.collab import Approval, ApprovalStatus, RunApproval, RunBlackboard, StepBlackboard
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
    """- hierarchical: a coordinator plans and gives each team tasks; per task, research and analysis run in
      parallel, then a synthesis; the teams work in parallel; the coordinator integrates the teams' results.
    - pipeline: stages in order, each on the previous output, validated, retried, then a fallback agent.
    - swarm: explorers propose solutions over generations, an evaluator scores them, the best are fed back.
    - eventDriven: a graph of tasks, each starting once the tasks it depends on have finished.
    - centralCommand: tasks planned (or given) and each assigned to the best agent by a weighted score.
    - peerToPeer: every agent proposes improvements each round, the others review them, the best are applied.
    - market: each task is auctioned; agents bid and the best acceptable bid wins.
    """

    hierarchical = "hierarchical"
    pipeline = "pipeline"
    swarm = "swarm"
    event_driven = "eventDriven"
    central_command = "centralCommand"
    peer_to_peer = "peerToPeer"
    market = "market"


class ConflictResolution(StrEnum):
    """- timestamp: the later write wins.
    - priority: the write with the higher priority wins; equal priorities, the later one.
    - consensus: the stale write becomes a proposal that replaces the value only when a strict majority of the
      voters accepts it; meanwhile the current value stays.
    - merge: two JSON objects are merged key by key, keeping the changes of both sides; a value both changed
      differently, or values that are not both objects, take the later write.
    """

    timestamp = "timestamp"
    priority = "priority"
    consensus = "consensus"
    merge = "merge"


class BalanceWeights(Model):
    """How the agents that could do a piece of work are ranked (load balancing): the weighted mean of free
    capacity, capability match and recent success, each from 0 to 1. Weights are relative (divided by their
    sum); at least one must be positive. Agents that are available come before agents still waking up, whatever
    their score."""

    load: float = Field(default=0.4, ge=0.0, le=1.0)
    """Weight of free capacity: 1 minus the agent's load (in-flight tasks over capacity, from its replicas'
    heartbeats, plus the tasks this run has handed it and not yet seen finish)."""
    capability: float = Field(default=0.4, ge=0.0, le=1.0)
    """Weight of capability match: the agent's level in the capability asked for (1 when a role is asked
    for)."""
    success: float = Field(default=0.2, ge=0.0, le=1.0)
    """Weight of recent success: (successes + 1) / (attempts + 2) over the agent's last 10 attempts in the
    namespace, so a new agent counts as 0.5 and an agent that recovered is not held back by old failures."""

    rules = (
        Rule(
            cel="self.load + self.capability + self.success > 0.0",
            message="at least one weight must be positive",
            check=lambda m: m.load + m.capability + m.success > 0,
        ),
    )


class Target(Model):
    """Who does a piece of work: one named agent, or any agent with a role or a capability."""

    agent: AgentName | None = None
    """This Agent, by name; it must be among the agents the orchestration may use."""
    role: RoleName | None = None
    """Any agent with this role. They are ranked by free capacity, capability match and recent success (see
    weights); the best gets the work, and the next one if it fails."""
    capability: CapabilityName | None = None
    """Any agent that lists this capability, ranked by free capacity, its level and recent success (see
    weights); the best gets the work, and the next one if it fails."""
    weights: BalanceWeights = Field(default_factory=BalanceWeights)
    """How the agents of a role or capability are ranked; default 0.4 load, 0.4 capability, 0.2 recent success
    (the pattern's load balancer). Unused for a named agent."""

    rules = (exactly_one("agent", "role", "capability"),)


# ---------------------------------------------------------------------------------------------- pipeline
class Validation(Model):
    """A check the stage's output must pass to be accepted."""

    json_schema: dict[str, Any]
    """JSON Schema (draft 2020-12) the output must satisfy. A rejected output is a failed attempt: retried, then
    handed to the fallback, but not counted against the agent's circuit breaker. A schema that is not valid JSON
    Schema fails the run when it starts."""


class Stage(Target):
    """One stage of the pipeline: who does it (exactly one of agent, role or capability), its extra input, the
    check of its output, its retries and a fallback agent."""

    name: TaskName
    """Stage name, unique in the pipeline (a DNS label); its task shows as `stage-<name>` in status.tasks."""
    input: Any = None
    """Extra input for this stage, any JSON. When it and the previous stage's output (the orchestration's input,
    for the first stage) are both objects they are merged, this stage's keys winning; otherwise the stage gets
    `{previous, stage}`. Unset: the previous output as it is."""
    validate_: Validation | None = Field(default=None, alias="validate")
    retries: int = Field(default=2, ge=0, le=10)
    """Retries on each agent after a first failed attempt, replacing the agents' resilience.retry.limit for
    this stage; 0 gives each agent one attempt."""
    fallback: AgentName | None = None
    """Agent that gets the stage, with the same retries, once the stage's own agents have failed. Unset, or
    failing too: the stage is lost, and onFailure says what that means."""
    on_failure: Literal["fail", "skip"] = "fail"
    """What a lost stage (no agent produced valid output, or none was available) means for the run. fail: the
    run fails, its message naming the stage and the last error (a rejected output's validation error). skip: the
    stage is skipped, its input passed on unchanged to the next stage, and the run is marked degraded; a stage
    whose agents are critical fails the run even so."""
    blackboard: StepBlackboard | None = None
    approval: Approval | None = None


class PipelineSpec(Model):
    """Settings of the pipeline strategy: stages run one after another, each on the previous stage's output;
    the result is the last stage's output."""

    stages: list[Stage] = Field(min_length=1, max_length=64)
    """The stages, in order; names must be unique."""

    rules = (unique_names("stages"),)


# ---------------------------------------------------------------------------------------------- hierarchical
class HierarchicalSpec(Model):
    """Settings of the hierarchical strategy: a coordinator plans and gives each team 1 to 3 tasks; the teams
    work in parallel, each on its tasks in order: research and analysis in parallel, then a synthesis, by the
    members whose roles the Team maps to those phases (Team spec.roles, else the roles here); the coordinator
    integrates the teams' results."""

    coordinator: AgentName | None = None
    """Agent that plans the work and integrates the teams' results. Unset: the lead of spec.team; with neither
    the run fails."""
    teams: list[AgentName] = Field(min_length=1, max_length=32)
    """Teams, by name, that each get tasks of the plan and work in parallel. A task whose work fails is left out
    and a team whose tasks all fail is left out, the run marked degraded; when every team fails the run fails."""
    research_role: RoleName = "researcher"
    """Role of the members that research each task, in teams whose spec.roles does not name one. A team without
    such a member is degraded."""
    analysis_role: RoleName = "analyzer"
    """Role of the members that analyse each task, in parallel with research, in teams whose spec.roles does not
    name one. A team without such a member is degraded; a team with neither researchers nor analysts fails."""
    synthesis_role: RoleName = "synthesizer"
    """Role of the member that merges a task's research and analysis into the team's answer, in teams whose
    spec.roles does not name one. No member with it: the team's lead; with neither the team fails."""


# ---------------------------------------------------------------------------------------------- swarm
class Convergence(Model):
    """When the swarm has stopped improving."""

    threshold: float = Field(default=0.01, ge=0.0, le=1.0)
    """A generation that raises the best score by less than this counts as no improvement. 0: the swarm never
    converges and runs until targetScore or maxGenerations."""
    patience: int = Field(default=2, ge=1, le=100)
    """Generations in a row without improvement after which the swarm stops."""


class SwarmSpec(Model):
    """Settings of the swarm strategy: explorers propose solutions over generations, an evaluator scores them,
    and the best so far and the top k are shown to the explorers of the next generation. The result is the best
    solution with its score."""

    explorer_role: RoleName = "explorer"
    """Role of the explorers: every agent with it proposes a solution in every generation. None: the run fails."""
    evaluator: AgentName | None = None
    """Agent that scores each generation's solutions (scores from 0 to 1). Unset: the agents with
    evaluatorRole, best ranked first."""
    evaluator_role: RoleName = "evaluator"
    """Role of the evaluators when evaluator is unset; with none the run fails."""
    max_generations: int = Field(default=5, ge=1, le=1000)
    """Most generations; the swarm stops earlier at targetScore or on convergence."""
    top_k: int = Field(default=3, ge=1, le=100)
    """Best solutions kept as knowledge: shown to the explorers and kept in the run's shared state under
    `swarm/knowledge`."""
    target_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Stop as soon as the best score reaches this. Unset: no target."""
    convergence: Convergence = Field(default_factory=Convergence)


# ---------------------------------------------------------------------------------------------- eventDriven
class EventTask(Model):
    """One task of the graph: who does it (exactly one of agents, role or capability), what it waits for, and
    its input."""

    name: TaskName
    """Task name, unique in the graph (a DNS label); other tasks name it in dependsOn. It shows as `task-<name>`
    in status.tasks, or `task-<name>-<agent>` per agent when sent to several."""
    agents: list[AgentName] | None = Field(default=None, min_length=1, max_length=32)
    """These Agents, by name. With several, each gets the task at once: it succeeds with the outputs of those
    that succeed (by agent, or the synthesizer's answer over them; degraded if some failed) and fails only when
    all fail, which fails the run when they are critical."""
    role: RoleName | None = None
    """The best agent with this role, or every one of them with fanOut."""
    capability: CapabilityName | None = None
    """The best agent that lists this capability, or every one of them with fanOut."""
    fan_out: bool = False
    """With role or capability: send the task to every matching agent, as with several agents, instead of the
    best one. No matching agent fails the task."""
    weights: BalanceWeights = Field(default_factory=BalanceWeights)
    """How the agents of a role or capability are ranked to pick the best one; default 0.4 load, 0.4
    capability, 0.2 recent success (the pattern's load balancer)."""
    input: Any = None
    """Input of this task, any JSON. Unset: the orchestration's input. The agent gets `{input, task, upstream}`,
    where upstream holds the output of each dependency by name."""
    depends_on: list[TaskName] = Field(default_factory=list, max_length=32)
    """Tasks of this graph that must succeed before this one starts; no cycles (a cycle fails the run with
    reason InvalidSpec). Empty: the task starts at once. If a dependency fails, this task is skipped."""

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
    """Settings of the eventDriven strategy: a task starts as soon as the tasks it depends on have finished.
    Failed tasks and the tasks skipped after them make the run degraded; it fails only when every task failed or
    a critical agent's task did."""

    tasks: list[EventTask] = Field(min_length=1, max_length=64)
    """The task graph; names must be unique and every dependsOn entry must name one of these tasks."""
    synthesizer: AgentName | None = None
    """Agent that synthesises: each task sent to several agents gets one answer from their successes (step
    `task-<name>-synthesize`, the task's output its dependents see), and at the end the outputs of all tasks
    become the result (step `synthesize`). Unset: a fanned-out task's output is the successes by agent, and the
    result is the outputs by task name."""

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
    """How centralCommand scores an agent for a task: the weighted mean of capability match, expected success
    and free capacity, each from 0 to 1. Weights are relative (divided by their sum); at least one must be
    positive."""

    capability: float = Field(default=0.5, ge=0.0, le=1.0)
    """Weight of capability match: the agent's mean level over the task's capabilities (1 when it names none)."""
    performance: float = Field(default=0.3, ge=0.0, le=1.0)
    """Weight of past success: (attempts succeeded + 1) / (attempts + 2) over the agent's history, so a new
    agent counts as 0.5."""
    load: float = Field(default=0.2, ge=0.0, le=1.0)
    """Weight of free capacity: 1 minus the agent's load, counting the tasks this plan has already given it, so
    equal agents share the work."""

    rules = (
        Rule(
            cel="self.capability + self.performance + self.load > 0.0",
            message="at least one weight must be positive",
            check=lambda m: m.capability + m.performance + m.load > 0,
        ),
    )


class PlannedTask(Model):
    """A task given in the spec: its name, input and the capabilities it needs."""

    name: TaskName
    """Task name, unique in the list (a DNS label); it shows as `task-<name>` in status.tasks and names the
    task's output in the result."""
    description: str | None = Field(default=None, max_length=4096)
    """What the task is, in words its agent reads with the task (a planner's answer fills it). Unset: the
    task's name and input only."""
    input: Any = None
    """Input of this task, any JSON. Unset: the orchestration's input."""
    capabilities: list[CapabilityName] = Field(default_factory=list, max_length=16)
    """Capabilities the task needs: only agents with a positive level in at least one of them may take it, and
    they rank by their mean level over all of them. Empty: any agent may."""


class CentralCommandSpec(Model):
    """Settings of the centralCommand strategy: a command center plans the tasks (or they are given), each is
    assigned to the best ready agent by a weighted score, and all run in parallel, each failing over to the next
    two best agents. The result holds each task's output and who was assigned it."""

    planner: AgentName | None = None
    """Agent that plans the tasks when tasks is not given: it gets the input and the roster of agents (name,
    role, capabilities) and answers a list of tasks. Unset: the lead of spec.team; with neither the run fails.
    The planner does not work on the tasks itself unless it is the only agent."""
    tasks: list[PlannedTask] | None = Field(default=None, min_length=1, max_length=64)
    """Tasks to run, given up front: nothing is planned. Unset: the planner plans them."""
    weights: AssignmentWeights = Field(default_factory=AssignmentWeights)


# ---------------------------------------------------------------------------------------------- peerToPeer
class PeerToPeerSpec(Model):
    """Settings of the peerToPeer strategy: each round every agent proposes an improvement of the current
    solution (at first, the input), every other agent reviews each proposal with a score from 0 to 1, and the best
    are applied. Needs at least two agents. The result is the solution, its score and what was applied when."""

    max_rounds: int = Field(default=5, ge=1, le=1000)
    """Most rounds."""
    convergence_threshold: float = Field(default=0.01, ge=0.0, le=1.0)
    """Stop when the best applied proposal's score moved by less than this from the previous round's. A round
    that applies nothing also ends the run."""
    apply_top: int = Field(default=1, ge=1, le=100)
    """Most proposals applied per round, best first, among those reaching minScore. Objects are merged, the best
    proposal winning conflicts; any other value is replaced by the best proposal."""
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """Mean review score a proposal needs to be applied."""


# ---------------------------------------------------------------------------------------------- market
class BidWeights(Model):
    """How bids are scored: the weighted mean of price, capability, reputation and time, each from 0 to 1.
    Weights are relative (divided by their sum); at least one must be positive."""

    price: float = Field(default=0.3, ge=0.0, le=1.0)
    """Weight of price: the cheapest bid of the auction scores 1, another one cheapest / its price."""
    capability: float = Field(default=0.4, ge=0.0, le=1.0)
    """Weight of the bidder's capability match: its mean level over the task's capabilities (1 when it names
    none)."""
    reputation: float = Field(default=0.2, ge=0.0, le=1.0)
    """Weight of the bidder's reputation: a moving average of its market results (a success counts its
    quality, a failure 0), 0.5 for a newcomer."""
    time: float = Field(default=0.1, ge=0.0, le=1.0)
    """Weight of the estimated time: the fastest bid scores 1, another one fastest / its time."""

    rules = (
        Rule(
            cel="self.price + self.capability + self.reputation + self.time > 0.0",
            message="at least one weight must be positive",
            check=lambda m: m.price + m.capability + m.reputation + m.time > 0,
        ),
    )


class MarketTask(PlannedTask):
    """A task put up for auction: its name, input, the capabilities it needs and a price ceiling."""

    max_price: float | None = Field(default=None, ge=0.0)
    """Highest price this task may be bought for; the lower of it and reservePrice applies. Unset: only
    reservePrice."""


class MarketSpec(Model):
    """Settings of the market strategy: tasks (given, or split from the project by a planner) are auctioned one
    after another. Each available agent that can do the task is asked for a bid (a price and an estimated time)
    or may decline; the best acceptable bid wins and its agent runs the task. With no acceptable bid the task is
    auctioned once more with relaxed limits, then given up (the run is degraded; it fails when no task was sold).
    The winner's reputation is updated from its result. An integrator may integrate the results into one
    answer."""

    tasks: list[MarketTask] | None = Field(default=None, min_length=1, max_length=64)
    """Tasks to auction, in order, each one's result updating the reputations the next auction uses. Unset: the
    planner's tasks, or without a planner a single task with the orchestration's input, whose output is the
    result."""
    planner: AgentName | None = None
    """Agent that splits the project into tasks when tasks is not given (decomposition): it gets the input and the
    roster of agents (name, role, capabilities) and answers tasks in the plan contract (name, description,
    capabilities), auctioned in its order. Unset: no decomposition."""
    integrator: AgentName | None = None
    """Agent that integrates the sold tasks' results into one answer (step `integrate`, the synthesize contract);
    the result is then that answer with the sales under `tasks`. Unset: the result is the sales by task name (or
    the single task's output)."""
    weights: BidWeights = Field(default_factory=BidWeights)
    reserve_price: float | None = Field(default=None, ge=0.0)
    """Highest acceptable price for any task, in the units of the Agents' pricing. Unset: no ceiling beyond the
    tasks' maxPrice."""
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    """Lowest acceptable bid score. 0: any bid within the price ceiling."""
    relax_factor: float = Field(default=1.5, ge=1.0, le=10.0)
    """For the one re-auction after no acceptable bid: the price ceiling is multiplied by it and minScore
    divided by it. 1 re-auctions with the same limits."""
    bid_timeout_seconds: int = Field(default=30, ge=1, le=3600)
    """Seconds each agent has to answer a bid request; a late or failed answer counts as no bid and is not
    retried."""


# ---------------------------------------------------------------------------------------------- spec
class Limits(Model):
    """Hard budgets of the run, checked before every dispatch and kept in Redis, so an operator restart does not
    reset them. Reaching one stops the run: Failed, reason BudgetExceeded, with the best partial result; no
    further task is dispatched. They may be edited while the run runs (unlike the rest of the spec): the new limits
    apply from then on, a new timeoutSeconds still counted from the run's start (Event LimitsChanged)."""

    timeout_seconds: int = Field(default=3600, ge=1, le=7 * 86400)
    """Wall-clock limit of the run in seconds, from its start; time suspended counts. A run still Pending this
    long after its creation fails too, with the reason it was waiting for."""
    max_tasks: int = Field(default=1000, ge=1, le=1_000_000)
    """Most task dispatches; every attempt counts: retries, fallbacks and market bids."""
    max_cost: float | None = Field(default=None, ge=0.0)
    """Most total cost of the run's tasks (see the Agents' pricing). Checked before each dispatch, so tasks
    already running can take the total past it. Unset: no limit; 0: nothing is dispatched."""
    max_tokens: int | None = Field(default=None, ge=0)
    """Most total tokens the run's tasks reported. Checked before each dispatch, so tasks already running can
    take the total past it. Unset: no limit; 0: nothing is dispatched."""


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
# The strategies whose block may be left out, and the block that stands in for it (its defaults).
DEFAULT_BLOCKS: dict[str, type[Model]] = {
    "swarm": SwarmSpec,
    "centralCommand": CentralCommandSpec,
    "peerToPeer": PeerToPeerSpec,
    "market": MarketSpec,
}


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
    """What to run: the strategy and its settings block, the agents it may use (a Team, a label selector, or
    every Agent of the namespace), its input, hard limits, and how conflicting writes to its shared state are
    settled. A run starts once its teams and named Agents exist and its scope holds an Agent, and runs once, with the
    spec it started with: an edit of a started run other than suspend, or of a finished run, has no effect
    (condition SpecIgnored). Whether each agent can take work is decided when the run
    needs it (see agentWaitSeconds)."""

    strategy: Strategy
    """How the agents work together. The block named after the strategy holds its settings: required for
    hierarchical, pipeline and eventDriven; the others have defaults. A block of another strategy is refused."""
    team: AgentName | None = None
    """Team whose members are the agents this run may use. The run stays Pending (condition Running reason
    TeamNotFound) until the Team exists. Set team or agentSelector, not both."""
    agent_selector: LabelSelector | None = None
    """Agents of the namespace, by label, that this run may use instead of a team. Neither team nor
    agentSelector: every Agent in the namespace."""
    input: Any = None
    """The run's input, any JSON; handed to its first tasks, as each strategy describes."""
    hierarchical: HierarchicalSpec | None = None
    pipeline: PipelineSpec | None = None
    swarm: SwarmSpec | None = None
    event_driven: EventDrivenSpec | None = None
    central_command: CentralCommandSpec | None = None
    peer_to_peer: PeerToPeerSpec | None = None
    market: MarketSpec | None = None
    limits: Limits = Field(default_factory=Limits)
    agent_wait_seconds: int = Field(default=180, ge=0, le=86400)
    """How long the run waits for an agent that is not up yet before passing it over: an Agent with
    spec.autoscaling at zero replicas (the queued task wakes it), one whose first replicas are starting, one that
    lost its last ready replica moments ago, or one whose backend stopped answering in the last two minutes (its
    model server restarting: the Agent's Available condition, reason BackendUnavailable). While
    it waits, condition Waiting says for whom. An agent that is scaled to zero without autoscaling, in
    maintenance, or without a ready replica is passed over at once. Passed over: the step goes to the next
    suitable agent, or is lost (a critical agent's step fails the run with reason AgentUnavailable, naming it;
    others degrade it). 0 passes such agents over at once too."""
    conflict_resolution: ConflictResolution = ConflictResolution.merge
    """How concurrent writes to the run's shared state are settled: a write (an agent's `stateUpdates`) made
    from a version of the key that someone has changed since. consensus asks the run's agents to vote (task kind
    vote). Every resolution is recorded in the run's audit stream (`podium run state NAME --audit`)."""
    blackboard: RunBlackboard | None = None
    approval: RunApproval | None = None
    suspend: bool = False
    """True holds dispatch: tasks in flight finish, nothing new starts, phase Suspended. False resumes. An
    Orchestration created suspended does not start (nor does its clock); suspended later, limits.timeoutSeconds
    keeps counting."""

    rules = (
        Rule(
            cel="!(has(self.team) && has(self.agentSelector))",
            message="set team or agentSelector, not both",
            check=lambda m: m.team is None or m.agent_selector is None,
        ),
        *(_block_matches(wire, attr) for wire, attr in STRATEGY_BLOCKS.items()),
        *(_block_required(wire) for wire in REQUIRED_BLOCKS),
    )

    def block(self) -> Model:
        """The settings block of the chosen strategy: the spec's, else its defaults (a required block is never left
        out: the rules above)."""
        value: Model | None = getattr(self, STRATEGY_BLOCKS[str(self.strategy)])
        return DEFAULT_BLOCKS[str(self.strategy)]() if value is None else value


class OrchestrationPhase(StrEnum):
    """- Pending: waiting for its teams and the Agents its spec names to exist, and for an Agent in its scope; the
      Running condition says why.
    - Running: dispatching tasks.
    - Suspended: spec.suspend holds dispatch.
    - AwaitingApproval: a step's output or the final result waits for a person (status.approvals names it).
    - Succeeded: finished with a result (degraded when it lost work it could do without).
    - Failed: stopped; message and conditions say why.
    """

    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    suspended = "Suspended"
    awaiting_approval = "AwaitingApproval"


TaskState = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"]


class TaskStatus(Model):
    """One task of the run, as the engine last reported it."""

    id: str
    """Task id of the latest attempt: `<orchestration uid>:<step>:<attempt>`."""
    name: str | None = None
    """The step: the task's place in the strategy's plan, e.g. `stage-review`, `gen-2-evaluate` or
    `task-build-alice`."""
    kind: str | None = None
    """What the agent was asked to do: execute, plan, review, evaluate, synthesize, propose, explore or bid."""
    agent: str | None = None
    """Agent of the latest attempt."""
    state: TaskState
    """Pending, Running, Succeeded, Failed, Skipped (a task it depended on failed), or Cancelled (the run ended
    before the task did: another step failed it, or its budget ran out; the agent is told to drop it)."""
    attempts: int = 0
    """Attempts so far, over every agent tried."""
    started_at: str | None = None
    """When the first attempt was dispatched (RFC 3339)."""
    completed_at: str | None = None
    """When the task finished (RFC 3339)."""
    error: str | None = Field(default=None, max_length=4096)
    """Why the task failed: the last attempt's error."""


class OrchestrationStatus(Model):
    """Progress and outcome of the run, patched at most once a second while it runs."""

    phase: OrchestrationPhase | None = None
    progress: str | None = None
    """Tasks done over tasks planned, e.g. `5/7`; the total grows as the strategy plans more."""
    tasks_done: int = 0
    """Tasks finished: Succeeded, Failed, Skipped or Cancelled."""
    tasks_total: int = 0
    """Tasks planned so far."""
    tasks: list[TaskStatus] | None = Field(default=None, max_length=100)
    """The most recently started tasks, oldest first."""
    result: Any = None
    """The run's result, any JSON, when it encodes to less than 32 KiB; a larger one is stored in Redis (see
    resultRef). A run that stopped early holds the best partial result it had."""
    result_ref: str | None = None
    """Where a result too large for status is stored, as `redis:<key>`; `podium run result <name>` fetches
    it."""
    cost: float = 0.0
    """Total cost of the run's tasks so far, in the units of the Agents' pricing."""
    tokens: int = 0
    """Total tokens the run's tasks reported so far."""
    degraded: bool = False
    """True when the run lost work it could do without (a non-critical step, a team, some of a fanned-out
    task's agents) and went on."""
    message: str | None = None
    """One line on the outcome, or on why the run waits or failed."""
    started_at: str | None = None
    """When the run started dispatching (RFC 3339); kept across operator restarts."""
    completed_at: str | None = None
    """When the run ended (RFC 3339)."""
    approvals: list[ApprovalStatus] | None = Field(default=None, max_length=100)
    """The approvals the run asked for (spec.approval, a stage's approval), waiting or decided."""
    conditions: list[Condition] | None = None
    """Running, Suspended and AwaitingApproval always; once the run ended also Complete, Failed, BudgetExceeded
    and Degraded, with the engine's reason (Completed, Degraded, BudgetExceeded, TaskFailed, StrategyFailed,
    InvalidSpec, NoAgents, ApprovalRejected, ApprovalTimedOut, ...)."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed for."""


class Orchestration(Resource):
    """An Orchestration: one run of a collaboration between Agents by one of seven strategies, with its input,
    budget, progress and result. It runs once; to run again, create a new Orchestration."""

    kind: Literal["Orchestration"] = "Orchestration"
    spec: OrchestrationSpec
    status: OrchestrationStatus | None = None
