"""Typed models of the Podium API (group podium.dev, version v1alpha1): the single source of truth.

The CRDs in crds/ are generated from these models, and the operator validates with them.
"""

from podium.api.agent import (
    Agent,
    AgentPhase,
    AgentSpec,
    AgentStats,
    AgentStatus,
    Backend,
    BreakerState,
    Capability,
)
from podium.api.common import API_VERSION, GROUP, VERSION, Condition, LabelSelector, Priority
from podium.api.orchestration import (
    ConflictResolution,
    Orchestration,
    OrchestrationPhase,
    OrchestrationSpec,
    OrchestrationStatus,
    Strategy,
    TaskStatus,
)
from podium.api.team import Team, TeamMember, TeamSpec, TeamStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Agent",
    "AgentPhase",
    "AgentSpec",
    "AgentStats",
    "AgentStatus",
    "Backend",
    "BreakerState",
    "Capability",
    "Condition",
    "ConflictResolution",
    "LabelSelector",
    "Orchestration",
    "OrchestrationPhase",
    "OrchestrationSpec",
    "OrchestrationStatus",
    "Priority",
    "Strategy",
    "TaskStatus",
    "Team",
    "TeamMember",
    "TeamSpec",
    "TeamStatus",
]
