"""The engine's view of the agents it may use: who they are, what they can do, how busy they are.

The operator builds an :class:`AgentDirectory` from Agent and Team objects; tests build one directly. The
engine never reads Kubernetes itself, so everything a strategy needs to pick an agent lives here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from podium.api.agent import AgentSpec, Pricing, Resilience
from podium.api.common import LabelSelector, Priority
from podium.api.orchestration import Target


class UnknownAgent(LookupError):
    """A spec names an agent or team that the directory does not hold."""


@dataclass(frozen=True)
class AgentInfo:
    name: str
    role: str
    capabilities: dict[str, float] = field(default_factory=dict)
    priority: str = Priority.important.value
    pricing: Pricing = field(default_factory=Pricing)
    resilience: Resilience = field(default_factory=Resilience)
    labels: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    ready_replicas: int = 1
    concurrency: int = 4
    maintenance: bool = False
    load: float = 0.0  # in-flight / capacity across replicas, from heartbeats
    # Collaboration (spec.blackboard, spec.subscriptions, spec.messageTasks): what the agent is told with its tasks.
    reads: tuple[str, ...] = ()
    write_priority: int = 1
    subscriptions: tuple[str, ...] = ()
    message_tasks: bool = False
    autoscaled: bool = False  # spec.autoscaling is set: queued work wakes it from zero replicas
    starting: bool = False  # its first replicas are starting (it has never been ready)
    recovering: bool = False  # it lost its last ready replica moments ago (a pod restart, a Redis blip)
    failing: str | None = None  # none of its replicas is ready and none will be by waiting: why (its Agent's status)
    outage: str | None = None  # its replicas are up but its backend stopped answering moments ago (restarting?): why

    @classmethod
    def from_spec(
        cls, name: str, spec: AgentSpec, *, labels: dict[str, str] | None = None, ready_replicas: int | None = None
    ) -> AgentInfo:
        return cls(
            name=name,
            role=spec.role,
            capabilities={c.name: c.level for c in spec.capabilities},
            priority=str(spec.priority),
            pricing=spec.pricing,
            resilience=spec.resilience,
            labels=dict(labels or {}),
            replicas=spec.replicas,
            ready_replicas=spec.replicas if ready_replicas is None else ready_replicas,
            concurrency=spec.concurrency,
            maintenance=spec.maintenance,
            reads=tuple(spec.blackboard.read) if spec.blackboard else (),
            write_priority=write_priority(spec),
            subscriptions=tuple(spec.subscriptions),
            message_tasks=spec.message_tasks,
            autoscaled=spec.autoscaling is not None,
        )

    @property
    def ready(self) -> bool:
        return self.ready_replicas > 0 and not self.maintenance

    def level(self, capability: str) -> float:
        return self.capabilities.get(capability, 0.0)


# The rank of an agent's writes under conflictResolution: priority, when its spec.blackboard.priority is unset.
PRIORITY_RANK = {Priority.critical.value: 2, Priority.important.value: 1, Priority.optional.value: 0}


def write_priority(spec: AgentSpec) -> int:
    if spec.blackboard is not None and spec.blackboard.priority is not None:
        return spec.blackboard.priority
    return PRIORITY_RANK[str(spec.priority)]


@dataclass(frozen=True)
class TeamInfo:
    name: str
    members: tuple[str, ...]
    lead: str | None = None
    roles: tuple[tuple[str, str], ...] = ()  # (phase, member role): the team's own map for hierarchical work

    def role(self, phase: str, default: str) -> str:
        """The member role that does ``phase`` (research, analysis, synthesis) in this team."""
        return dict(self.roles).get(phase, default)


class AgentDirectory:
    """Agents and teams by name, with lookups by role, capability, team and label selector."""

    def __init__(self, agents: Iterable[AgentInfo], teams: Iterable[TeamInfo] = ()) -> None:
        # By name, sorted once: every step that ranks a role or a capability walks them in that order.
        self._agents = {a.name: a for a in sorted(agents, key=lambda a: a.name)}
        self._teams = {t.name: t for t in teams}

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def all(self) -> list[AgentInfo]:
        """Every agent, by name."""
        return list(self._agents.values())

    def get(self, name: str) -> AgentInfo:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(f"agent {name!r} is not in this orchestration's scope") from None

    def team(self, name: str) -> TeamInfo:
        try:
            return self._teams[name]
        except KeyError:
            raise UnknownAgent(f"team {name!r} does not exist") from None

    def by_role(self, role: str) -> list[AgentInfo]:
        return [a for a in self.all() if a.role == role]

    def by_capability(self, capability: str) -> list[AgentInfo]:
        return [a for a in self.all() if capability in a.capabilities]

    def in_team(self, team: str) -> list[AgentInfo]:
        members = self.team(team).members
        return [self._agents[m] for m in members if m in self._agents]

    def matching(self, selector: LabelSelector) -> list[AgentInfo]:
        return [a for a in self.all() if selector.matches(a.labels)]

    def resolve(self, target: Target) -> list[AgentInfo]:
        """Every agent that may do work aimed at ``target`` (ready or not: selection decides)."""
        if target.agent is not None:
            return [self.get(target.agent)]
        if target.role is not None:
            return self.by_role(target.role)
        assert target.capability is not None  # Target's rule: exactly one is set
        return self.by_capability(target.capability)

    def names(self, target: Target) -> list[str]:
        """The names :meth:`resolve` stands for, without looking up a named agent: what a spec names, whether or not
        it exists (for the checks before a run starts)."""
        return [target.agent] if target.agent is not None else [a.name for a in self.resolve(target)]

    # ------------------------------------------------------------------ scoping and live data
    def scoped(self, *, team: str | None = None, selector: LabelSelector | None = None) -> AgentDirectory:
        """The directory an orchestration sees: its team's members, its selector's matches, or everything."""
        if team is not None:
            return AgentDirectory(self.in_team(team), self._teams.values())
        if selector is not None:
            return AgentDirectory(self.matching(selector), self._teams.values())
        return self

    def with_load(self, loads: dict[str, float]) -> AgentDirectory:
        agents = [replace(a, load=loads.get(a.name, a.load)) for a in self._agents.values()]
        return AgentDirectory(agents, self._teams.values())

    def lead(self, team: str | None) -> str | None:
        if team is None or team not in self._teams:
            return None
        return self._teams[team].lead
