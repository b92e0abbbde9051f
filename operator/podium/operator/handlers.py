"""Every kopf handler the operator registers; importing this package registers them all (one module per concern)."""

from __future__ import annotations

from podium.operator import indexes, lifecycle
from podium.operator.agents import handlers as agents
from podium.operator.orchestrations import handlers as orchestrations
from podium.operator.teams import handlers as teams

__all__ = ["agents", "indexes", "lifecycle", "orchestrations", "teams"]
