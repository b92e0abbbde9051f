"""Every kopf handler the operator registers, added to a registry once the settings are known (one module per kind).

Nothing registers at import: `podium operator` builds a registry with :func:`register` after reading its
settings (timer intervals are settings) and hands it, with the settings in the memo, to ``kopf.run``.
"""

from __future__ import annotations

import kopf

from podium.operator import indexes, lifecycle
from podium.operator.agents import handlers as agents
from podium.operator.settings import Settings
from podium.operator.teams import handlers as teams


def register(registry: kopf.OperatorRegistry, settings: Settings) -> kopf.OperatorRegistry:
    lifecycle.register(registry)
    indexes.register(registry)
    agents.register(registry, settings)
    teams.register(registry, settings)
    # Orchestrations have none: every replica's run sharder drives them and looks after their objects
    # (podium.operator.orchestrations.handlers).
    return registry
