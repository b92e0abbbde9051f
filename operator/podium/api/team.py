"""The Team kind: a named group of Agents, by name or label selector, with an optional lead."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from podium.api.common import AgentName, Condition, LabelSelector, Model, Resource, RoleName, exactly_one


class TeamMember(Model):
    """One entry of the member list: exactly one of agent (a name) or selector (labels)."""

    agent: AgentName | None = None
    """Name of an Agent in the Team's namespace. If it does not exist it is listed in status.missing and the
    Team is Degraded (condition MembersResolved reason AgentNotFound) until it is created."""
    selector: LabelSelector | None = None
    """Every Agent of the namespace whose labels match is a member, including Agents created later (members
    are resolved again on every Team change and every 5 s). Matching nothing is not an error."""

    rules = (exactly_one("agent", "selector"),)


class TeamRoles(Model):
    """Which members do each phase of the team's work in a hierarchical orchestration, by their role: e.g. a
    development team's `{research: coder, analysis: tester, synthesis: reviewer}`. A phase left unset uses the
    orchestration's hierarchical researchRole, analysisRole or synthesisRole."""

    research: RoleName | None = None
    """Role of the members that research each task of the team's part (in parallel with analysis)."""
    analysis: RoleName | None = None
    """Role of the members that analyse each task of the team's part (in parallel with research)."""
    synthesis: RoleName | None = None
    """Role of the member that merges a task's research and analysis into the team's answer for it; none with it:
    the team's lead."""


class TeamSpec(Model):
    """Who is in the Team and who leads it."""

    description: str | None = Field(default=None, max_length=4096)
    """What the team is for, in words for people; Podium does not act on it."""
    lead: AgentName | None = None
    """Agent that leads the Team; it counts as a member. Strategies fall back to the lead of the orchestration's
    team where the spec names no agent: the hierarchical coordinator and a team's synthesiser, the
    centralCommand planner. A lead that does not exist is listed in status.missing."""
    members: list[TeamMember] = Field(min_length=1, max_length=256)
    """Member entries, by name or selector; an Agent named or matched more than once counts once."""
    roles: TeamRoles | None = None
    """Which member roles research, analyse and synthesise when a hierarchical orchestration hands this team
    work. Unset: the orchestration's roles (researcher, analyzer, synthesizer by default)."""


class TeamStatus(Model):
    """Membership and readiness as the operator last resolved them."""

    members: list[str] | None = None
    """Names of the member Agents that exist (named, selected and the lead), each once."""
    member_count: int = 0
    """How many names members holds."""
    ready_members: int = 0
    """Members in phase Ready or Busy."""
    ready: str | None = None
    """readyMembers/memberCount, e.g. `3/4`, as `kubectl get` shows it."""
    missing: list[str] | None = None
    """Names in the spec (members or lead) with no Agent in the namespace."""
    degraded: bool = False
    """True when a member is not Ready or Busy, or a named Agent is missing."""
    message: str | None = None
    """Why the Team is not fine, in one line; absent when it is."""
    conditions: list[Condition] | None = None
    """MembersResolved (False, reason AgentNotFound, while named Agents are missing), Ready (False, reason
    CriticalMemberDown when a critical member is down, NoMembers when nothing matches) and Degraded (reason
    MembersDown or MembersMissing)."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed for."""


class Team(Resource):
    """A Team: Agents that work together, named or selected by labels, with an optional lead. An Orchestration
    uses a Team as the set of agents it may use (spec.team), and the hierarchical strategy hands each of its teams
    a part of the work."""

    kind: Literal["Team"] = "Team"
    spec: TeamSpec
    status: TeamStatus | None = None
