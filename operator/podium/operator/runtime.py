"""The operator's live objects, built by the kopf start-up handler and kept in kopf's memo (no module globals).

``kopf.run(memo=...)`` starts with the :class:`Settings` under ``memo.settings``; the start-up handler adds the
:class:`Runtime` under ``memo.runtime``. kopf gives every resource a shallow copy of that memo, so each handler
reaches the same Kubernetes client, Redis connection and reconcilers through :func:`of`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.operator.agents.reconcile import AgentReconciler
from podium.operator.kube import Kube
from podium.operator.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    redis: aioredis.Redis
    agents: AgentReconciler
    bus: Bus  # the runs' bus: one result reader and one dispatch coalescer for all the runs of this replica
    degraded_teams: set[tuple[str, str]] = field(default_factory=set)  # for the teams-degraded gauge
    runs: Any = None  # this replica's run sharder (podium.operator.orchestrations.shards.Sharder), once started


def settings_of(memo: Any) -> Settings:
    conf = getattr(memo, "settings", None)
    if not isinstance(conf, Settings):
        raise RuntimeError("the operator's settings are not in kopf's memo (start it with kopf.run(memo=...))")
    return conf


def of(memo: Any) -> Runtime:
    rt = getattr(memo, "runtime", None)
    if not isinstance(rt, Runtime):
        raise RuntimeError("the operator runtime is not started (kopf start-up handler has not run)")
    return rt
