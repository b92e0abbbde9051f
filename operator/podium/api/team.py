"""The Team kind: a named group of Agents, by name or label selector, with an optional lead."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from podium.api.common import AgentName, Condition, LabelSelector, Model, Resource, exactly_one


class TeamMember(Model):
    agent: AgentName | None = None
    selector: LabelSelector | None = None

    rules = (exactly_one("agent", "selector"),)


class TeamSpec(Model):
    """A Team: Agents that work together, named or selected by labels, with an optional lead."""

    description: str | None = Field(default=None, max_length=4096)
    lead: AgentName | None = Field(default=None, description="Agent that leads: plans and integrates")
    members: list[TeamMember] = Field(min_length=1, max_length=256)


class TeamStatus(Model):
    members: list[str] | None = Field(default=None, description="resolved member Agent names")
    member_count: int = 0
    ready_members: int = 0
    ready: str | None = Field(default=None, description="readyMembers/memberCount, for kubectl get")
    missing: list[str] | None = Field(default=None, description="named members that do not exist")
    degraded: bool = False
    message: str | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class Team(Resource):
    kind: Literal["Team"] = "Team"
    spec: TeamSpec
    status: TeamStatus | None = None
