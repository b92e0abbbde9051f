"""Whether an agent can take work now, from what the directory says of it. Pure.

A run decides per agent, before each dispatch (and up front for the agents its spec names): an available agent
gets the work; a waking one gets it too and the run waits a bounded time for it to come up (an autoscaled agent
at zero replicas is woken by the work itself; a new agent's first replicas are starting; one that lost its last
ready replica moments ago is most likely restarting it; one whose backend stopped answering moments ago, its model
server most likely restarting); an unavailable one is passed over at once: the step goes
to the next suitable agent, or is lost (critical: the run fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from podium.api.common import Priority
from podium.engine.directory import AgentInfo


class State(IntEnum):
    """Ordered best first, so ranking can sort on it."""

    AVAILABLE = 0  # a ready replica takes tasks now
    WAKING = 1  # no ready replica yet, but one is coming: the run waits for it, within its bound
    UNAVAILABLE = 2  # nothing will take the task: pass it over


@dataclass(frozen=True)
class Availability:
    state: State
    reason: str = ""  # why it is not available, for messages and conditions

    @property
    def usable(self) -> bool:
        return self.state is not State.UNAVAILABLE


AVAILABLE = Availability(State.AVAILABLE)


def of(agent: AgentInfo) -> Availability:
    if agent.maintenance:
        return Availability(State.UNAVAILABLE, "in maintenance (spec.maintenance)")
    if agent.ready_replicas > 0:
        return AVAILABLE
    if agent.failing:  # waiting would not bring a replica up: its backend or its container cannot start
        return Availability(State.UNAVAILABLE, agent.failing)
    if agent.outage:  # its model server restarting, most likely: the queued task waits for it
        return Availability(State.WAKING, agent.outage)
    if agent.autoscaled:
        if agent.replicas == 0:
            return Availability(State.WAKING, "at zero replicas; its autoscaler starts one for the queued work")
        return Availability(State.WAKING, "its autoscaler is starting a replica")
    if agent.replicas == 0:
        return Availability(State.UNAVAILABLE, "scaled to zero replicas, without spec.autoscaling to wake it")
    if agent.starting:
        return Availability(State.WAKING, "its first replicas are starting")
    if agent.recovering:
        return Availability(State.WAKING, f"none of its {agent.replicas} replicas is ready since moments ago")
    return Availability(State.UNAVAILABLE, f"none of its {agent.replicas} replicas is ready")


def usable(agents: list[AgentInfo]) -> list[AgentInfo]:
    """The agents that can take work now or soon, in their order."""
    return [a for a in agents if of(a).usable]


def blocked(needs: Sequence[tuple[str, Sequence[AgentInfo]]]) -> str | None:
    """Why the run cannot start, or None: a piece of work (``what``) whose agents are all unavailable and one of
    them critical, so the step could only fail. Non-critical work is left to degrade when the run gets there."""
    for what, agents in needs:
        if not agents or any(of(a).usable for a in agents):
            continue
        critical = [a for a in agents if a.priority == Priority.critical.value]
        if critical:
            first = critical[0]
            return f"{what} needs critical agent {first.name!r}, which is unavailable: {of(first).reason}"
    return None
