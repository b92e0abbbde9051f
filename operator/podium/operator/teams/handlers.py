"""kopf handlers for Teams: resolve members from the Agent index and keep status current.

Each round reads the Team and the namespace's Agents from kopf's index, decides the status (pure) and acts:
an Event when it turns (un)degraded, a status patch when anything changed, the degraded-teams gauge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf
from pydantic import ValidationError

from podium.api.team import TeamSpec
from podium.api.validation import explain
from podium.operator import metrics, runtime
from podium.operator.conditions import Cond, merge
from podium.operator.settings import Settings
from podium.operator.teams import status as team_status
from podium.operator.teams.status import AgentView

TEAMS = ("podium.dev", "v1alpha1", "teams")


def decide(body: kopf.Body | dict[str, Any], agents: Iterable[AgentView]) -> dict[str, Any]:
    """The Team's status from its spec and the namespace's Agents (pure)."""
    meta = body["metadata"]
    generation = meta.get("generation")
    old = dict(body.get("status") or {})
    try:
        spec = TeamSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as e:
        message = "invalid Team: " + "; ".join(explain(e))
        return {
            "conditions": merge(old.get("conditions"), [Cond("Ready", False, "InvalidSpec", message)], generation),
            "message": message,
            "observedGeneration": generation,
        }
    by_name = {a.name: a for a in agents}
    return team_status.status(team_status.resolve(spec, by_name), generation=generation, old=old)


async def refresh(rt: runtime.Runtime, body: kopf.Body, agents_by_namespace: kopf.Index) -> dict[str, Any]:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    old = dict(body.get("status") or {})
    status = decide(body, agents_by_namespace.get(namespace, []))
    if any(old.get(k) != v for k, v in status.items()):
        if old.get("degraded") != status.get("degraded") and "degraded" in status:
            reason, kind = ("TeamDegraded", "Warning") if status["degraded"] else ("TeamRecovered", "Normal")
            kopf.event(body, type=kind, reason=reason, message=status.get("message") or "all members ready")
        await rt.kube.patch_status("teams", namespace, name, status)
    (rt.degraded_teams.add if status.get("degraded") else rt.degraded_teams.discard)((namespace, name))
    metrics.TEAMS_DEGRADED.set(len(rt.degraded_teams))
    return status


async def reconcile(body: kopf.Body, memo: kopf.Memo, agents_by_namespace: kopf.Index, **_: Any) -> None:
    with metrics.timed("Team"):
        await refresh(runtime.of(memo), body, agents_by_namespace)


async def watch_members(body: kopf.Body, memo: kopf.Memo, agents_by_namespace: kopf.Index, **_: Any) -> None:
    """Members change without the Team changing (an Agent appears, goes down): follow them from the index."""
    with metrics.timed("TeamHealth"):
        await refresh(runtime.of(memo), body, agents_by_namespace)


# kopf's callback protocols know neither index kwargs nor a narrower logger type: hence the ignores below.
def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    kopf.on.resume(*TEAMS, registry=registry)(reconcile)  # type: ignore[arg-type]
    kopf.on.create(*TEAMS, registry=registry)(reconcile)  # type: ignore[arg-type]
    kopf.on.update(*TEAMS, field="spec", registry=registry)(reconcile)  # type: ignore[arg-type]
    every = settings.team_interval_seconds
    members_timer = kopf.timer(*TEAMS, interval=every, initial_delay=every, backoff=every, registry=registry)
    members_timer(watch_members)  # type: ignore[arg-type]
