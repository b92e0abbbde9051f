"""kopf handlers for Teams: resolve members from the Agent index and keep status current."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from podium.api.team import TeamSpec
from podium.api.validation import explain
from podium.operator import metrics, runtime
from podium.operator.conditions import Cond, merge
from podium.operator.settings import current as settings
from podium.operator.teams import status as team_status
from podium.operator.teams.status import AgentView

TEAMS = ("podium.dev", "v1alpha1", "teams")
degraded_teams: set[tuple[str, str]] = set()


async def refresh(body: kopf.Body, agents_by_namespace: kopf.Index) -> dict[str, Any]:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    old = dict(body.get("status") or {})
    try:
        spec = TeamSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as e:
        message = "invalid Team: " + "; ".join(explain(e))
        status: dict[str, Any] = {
            "conditions": merge(old.get("conditions"), [Cond("Ready", False, "InvalidSpec", message)], generation),
            "message": message,
            "observedGeneration": generation,
        }
    else:
        agents: dict[str, AgentView] = {a.name: a for a in agents_by_namespace.get(namespace, [])}
        status = team_status.status(team_status.resolve(spec, agents), generation=generation, old=old)
    if any(old.get(k) != v for k, v in status.items()):
        if old.get("degraded") != status.get("degraded") and "degraded" in status:
            reason, kind = ("TeamDegraded", "Warning") if status["degraded"] else ("TeamRecovered", "Normal")
            kopf.event(body, type=kind, reason=reason, message=status.get("message") or "all members ready")
        await runtime.get().kube.patch_status("teams", namespace, name, status)
    (degraded_teams.add if status.get("degraded") else degraded_teams.discard)((namespace, name))
    metrics.TEAMS_DEGRADED.set(len(degraded_teams))
    return status


@kopf.on.resume(*TEAMS)
@kopf.on.create(*TEAMS)
@kopf.on.update(*TEAMS, field="spec")  # type: ignore[arg-type]
async def reconcile(body: kopf.Body, agents_by_namespace: kopf.Index, **_: Any) -> None:
    with metrics.timed("Team"):
        await refresh(body, agents_by_namespace)


@kopf.timer(*TEAMS, interval=settings.team_interval_seconds, initial_delay=settings.team_interval_seconds)  # type: ignore[arg-type]
async def watch_members(body: kopf.Body, agents_by_namespace: kopf.Index, **_: Any) -> None:
    """Members change without the Team changing (an Agent appears, goes down): follow them from the index."""
    with metrics.timed("TeamHealth"):
        await refresh(body, agents_by_namespace)
