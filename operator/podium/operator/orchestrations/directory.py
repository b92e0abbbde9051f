"""The engine's AgentDirectory, built from the cluster's Agents and Teams, and the check that a run can start.

Building is pure (raw API objects in, directory out) so it is tested without a cluster; ``fetch`` is the one
API read (a list of Agents and one of Teams in the orchestration's namespace).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from podium.api.agent import AgentSpec
from podium.api.orchestration import OrchestrationSpec
from podium.api.team import TeamSpec
from podium.engine.directory import AgentDirectory, AgentInfo, TeamInfo, UnknownAgent
from podium.engine.strategies import needs
from podium.operator.agents.status import (
    BACKEND_RECOVERING,
    BACKEND_RECOVERY_GRACE_SECONDS,
    BACKEND_UNAVAILABLE,
    CANNOT_START,
    CRASHING,
)
from podium.operator.conditions import false_within, find
from podium.operator.kube import Kube


@dataclass(frozen=True)
class Snapshot:
    """The raw Agents and Teams of one namespace, as the API returned them."""

    agents: list[dict[str, Any]]
    teams: list[dict[str, Any]]


# How long an Agent that had a ready replica and lost the last one counts as recovering (a pod restarting, its
# agents reconnecting after a Redis restart or a helm upgrade): a run waits for it meanwhile, within its
# agentWaitSeconds; after that it is unavailable and passed over, as the pattern asks of an agent without ready
# replicas. Long enough for a pod restart and a readiness probe or two.
RECOVERY_GRACE_SECONDS = 20.0


def agent_info(obj: dict[str, Any], now: float | None = None) -> AgentInfo | None:
    """One Agent as the engine sees it; None for an Agent whose spec does not parse (its own status says why)."""
    meta = obj.get("metadata") or {}
    try:
        spec = AgentSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None
    status = obj.get("status") or {}
    info = AgentInfo.from_spec(
        meta["name"], spec, labels=dict(meta.get("labels") or {}), ready_replicas=int(status.get("readyReplicas") or 0)
    )
    now = time.time() if now is None else now
    # Never ready yet (just created, or no status): its first replicas are starting, worth a bounded wait.
    outage = _outage(status, now)
    failing = None if outage else _stuck(status)
    info = replace(info, starting=status.get("phase") in (None, "Initializing"), failing=failing, outage=outage)
    if info.ready_replicas == 0 and status.get("phase") == "Degraded":
        info = replace(info, recovering=false_within(_unavailable(status), now, RECOVERY_GRACE_SECONDS))
    load = status.get("load")
    return replace(info, load=float(load)) if isinstance(load, int | float) else info


def _unavailable(status: dict[str, Any]) -> dict[str, Any] | None:
    """The Agent's Available condition when it is False."""
    available = find(status.get("conditions"), "Available")
    return available if available is not None and available.get("status") == "False" else None


STUCK = {
    CRASHING: "its replicas keep exiting",
    CANNOT_START: "its replicas cannot start",
    BACKEND_UNAVAILABLE: "its backend is unavailable",
}
# What a run is told of an Agent whose backend stopped answering lately (its Available condition's reason).
OUTAGE = {
    BACKEND_UNAVAILABLE: "its backend is unavailable",
    BACKEND_RECOVERING: "its backend is coming back",
}


def _why(available: dict[str, Any] | None, said_of: dict[str, str]) -> str | None:
    """What ``said_of`` says of the Available condition's reason, with the condition's message; None for a reason
    it does not name."""
    what = said_of.get(str((available or {}).get("reason")))
    if what is None:
        return None
    said = (available or {}).get("message")
    return f"{what}: {said}" if said else what


def _stuck(status: dict[str, Any]) -> str | None:
    """Why none of its replicas will be ready by waiting, as its Available condition says (the operator's
    ``stuck``), or None."""
    return _why(_unavailable(status), STUCK)


def _outage(status: dict[str, Any], now: float) -> str | None:
    """Why the Agent's backend does not take work, while that began within BACKEND_RECOVERY_GRACE_SECONDS; else
    None."""
    available = _unavailable(status)
    return _why(available, OUTAGE) if false_within(available, now, BACKEND_RECOVERY_GRACE_SECONDS) else None


def team_info(obj: dict[str, Any], agents: dict[str, AgentInfo]) -> TeamInfo | None:
    """Members as the Team controller resolved them (status.members), else resolved here from the spec."""
    meta = obj.get("metadata") or {}
    try:
        spec = TeamSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None
    resolved = (obj.get("status") or {}).get("members")
    if isinstance(resolved, list):
        members = [str(m) for m in resolved]
    else:
        members = []
        for member in spec.members:
            if member.agent is not None:
                members.append(member.agent)
            elif member.selector is not None:
                members += [a.name for a in agents.values() if member.selector.matches(a.labels)]
    roles = spec.roles.model_dump(exclude_none=True) if spec.roles is not None else {}
    return TeamInfo(
        name=meta["name"], members=tuple(dict.fromkeys(members)), lead=spec.lead, roles=tuple(roles.items())
    )


def build(snapshot: Snapshot) -> AgentDirectory:
    agents = {a.name: a for a in (agent_info(o) for o in snapshot.agents) if a is not None}
    teams = [t for t in (team_info(o, agents) for o in snapshot.teams) if t is not None]
    return AgentDirectory(agents.values(), teams)


@dataclass(frozen=True)
class Readiness:
    """Whether a run may start now; when not, a CamelCase reason and a message for the condition."""

    ok: bool
    reason: str = ""
    message: str = ""


def named_teams(spec: OrchestrationSpec) -> list[str]:
    names = [spec.team] if spec.team else []
    if spec.hierarchical is not None:
        names += spec.hierarchical.teams
    return list(dict.fromkeys(names))


def readiness(spec: OrchestrationSpec, directory: AgentDirectory) -> Readiness:
    """A run starts once its teams and the Agents its spec names exist and its scope holds an Agent (Agents, Teams
    and Orchestrations are often applied together, or in any order, so it waits Pending rather than fails).

    It does not wait for agents to be ready: the engine decides per agent when a step needs one (a run must not be
    held by an agent it never uses), waits a bounded time for one that is coming up, and fails fast for a critical
    one that is not.
    """
    teams = named_teams(spec)
    missing = [t for t in teams if not _has_team(directory, t)]
    if missing:
        return Readiness(False, "TeamNotFound", f"team(s) {', '.join(missing)} do not exist in this namespace")
    absent: dict[str, str] = {}  # agent -> what of the spec names it (the first)
    for what, names in needs(str(spec.strategy), spec.block(), directory):
        for name in names:
            if name not in directory:
                absent.setdefault(name, what)
    if absent:
        listed = ", ".join(f"{name} ({what})" for name, what in absent.items())
        return Readiness(False, "AgentNotFound", f"agent(s) not in this namespace: {listed}")
    if spec.strategy == "hierarchical" and spec.team is None:
        scope = [a for t in teams for a in directory.in_team(t)]
    else:
        scope = directory.scoped(team=spec.team, selector=spec.agent_selector).all()
    if not scope:
        where = f"team {spec.team}" if spec.team else ("agentSelector" if spec.agent_selector else "the namespace")
        return Readiness(False, "NoAgents", f"no Agents in scope ({where})")
    return Readiness(True)


def _has_team(directory: AgentDirectory, name: str) -> bool:
    try:
        directory.team(name)
    except UnknownAgent:
        return False
    return True


async def fetch(kube: Kube, namespace: str, resource_version: str | None = None) -> Snapshot:
    agents, teams = await asyncio.gather(
        kube.run(kube.list_objects, "agents", namespace, resource_version),
        kube.run(kube.list_objects, "teams", namespace, resource_version),
    )
    return Snapshot(agents, teams)


class Snapshots:
    """The namespace's Agents and Teams shared by every run of this replica for ``seconds``: 200 runs starting (or
    waiting Pending) together make two LISTs a second per namespace, not two per run, served from the API
    server's watch cache. A run reads them when it starts or resumes; seconds-old readiness is fine there (the
    engine copes with an agent that went away, as after any start)."""

    def __init__(self, kube: Kube, seconds: float = 1.0) -> None:
        self.kube, self.seconds = kube, seconds
        self._taken: dict[str, tuple[float, asyncio.Future[Snapshot]]] = {}
        self._built: dict[str, tuple[Snapshot, AgentDirectory]] = {}

    async def directory(self, namespace: str) -> AgentDirectory:
        """The namespace's snapshot as a directory, built once per snapshot for every run that reads it (a directory
        is never changed in place: scoping and loads make new ones)."""
        snapshot = await self.fetch(namespace)
        built = self._built.get(namespace)
        if built is None or built[0] is not snapshot:
            built = (snapshot, build(snapshot))
            self._built[namespace] = built
        return built[1]

    async def fetch(self, namespace: str) -> Snapshot:
        now = time.monotonic()
        taken = self._taken.get(namespace)
        stale = taken is None or now - taken[0] > self.seconds
        if stale or (taken is not None and taken[1].done() and (taken[1].cancelled() or taken[1].exception())):
            taken = (now, asyncio.ensure_future(fetch(self.kube, namespace, resource_version="0")))
            self._taken[namespace] = taken
        assert taken is not None
        return await asyncio.shield(taken[1])
