"""A Team's status from the Agents that exist in its namespace (pure).

Members come from names and label selectors. A named Agent that does not exist is reported in ``missing``
with a condition the user can act on; it is not an error that makes the operator retry in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podium.api.agent import AgentPhase
from podium.api.common import Priority
from podium.api.team import TeamSpec
from podium.operator.conditions import Cond, merge

UP_PHASES = {AgentPhase.ready.value, AgentPhase.busy.value}


@dataclass(frozen=True)
class AgentView:
    """What a Team needs to know of one Agent."""

    name: str
    labels: dict[str, str]
    priority: str
    phase: str | None
    replicas: int  # spec.replicas

    @property
    def up(self) -> bool:
        # An agent scaled to zero on purpose is not "down": its tasks wait in its inbox.
        return self.phase in UP_PHASES


@dataclass(frozen=True)
class Resolution:
    members: list[str]
    missing: list[str]
    down: dict[str, str]  # name -> priority of members that are not up
    ready: int


def resolve(spec: TeamSpec, agents: dict[str, AgentView]) -> Resolution:
    names: list[str] = []
    missing: list[str] = []
    for member in spec.members:
        if member.agent is not None:
            if member.agent in agents:
                names.append(member.agent)
            else:
                missing.append(member.agent)
        elif member.selector is not None:
            names.extend(sorted(n for n, a in agents.items() if member.selector.matches(a.labels)))
    if spec.lead and spec.lead not in agents and spec.lead not in missing:
        missing.append(spec.lead)
    elif spec.lead and spec.lead in agents:
        names.append(spec.lead)
    unique = list(dict.fromkeys(names))
    down = {n: agents[n].priority for n in unique if not agents[n].up}
    return Resolution(members=unique, missing=missing, down=down, ready=len(unique) - len(down))


def conditions(res: Resolution) -> list[Cond]:
    critical_down = sorted(n for n, p in res.down.items() if p == Priority.critical.value)
    other_down = sorted(n for n, p in res.down.items() if p != Priority.critical.value)
    out: list[Cond] = []
    if res.missing:
        out.append(
            Cond(
                "MembersResolved",
                False,
                "AgentNotFound",
                f"no Agent named {', '.join(res.missing)} in this namespace; create it or fix the Team",
            )
        )
    else:
        out.append(Cond("MembersResolved", True, "AllMembersFound", f"{len(res.members)} members"))
    if not res.members:
        out.append(Cond("Ready", False, "NoMembers", "no Agent matches the Team's members"))
    elif critical_down:
        down = ", ".join(critical_down)
        out.append(Cond("Ready", False, "CriticalMemberDown", f"critical members not ready: {down}"))
    else:
        out.append(Cond("Ready", True, "CriticalMembersReady", f"{res.ready}/{len(res.members)} members ready"))
    degraded = sorted(critical_down + other_down)
    if degraded or res.missing:
        parts = []
        if degraded:
            parts.append(f"members not ready: {', '.join(degraded)}")
        if res.missing:
            parts.append(f"missing: {', '.join(res.missing)}")
        out.append(Cond("Degraded", True, "MembersDown" if degraded else "MembersMissing", "; ".join(parts)))
    else:
        out.append(Cond("Degraded", False, "AllMembersReady"))
    return out


def status(
    res: Resolution, *, generation: int | None, old: dict[str, Any] | None, now: float | None = None
) -> dict[str, Any]:
    old = old or {}
    conds = merge(old.get("conditions"), conditions(res), generation, now)
    degraded = any(c["type"] == "Degraded" and c["status"] == "True" for c in conds)
    message = next((c["message"] for c in conds if c["status"] != "True" and c["type"] != "Degraded"), None)
    if message is None and degraded:
        message = next(c["message"] for c in conds if c["type"] == "Degraded")
    return {
        "members": res.members,
        "memberCount": len(res.members),
        "readyMembers": res.ready,
        "ready": f"{res.ready}/{len(res.members)}",
        "missing": res.missing,
        "degraded": degraded,
        "message": message,
        "conditions": conds,
        "observedGeneration": generation,
    }
