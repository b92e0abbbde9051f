"""Every kopf handler the operator registers; importing this package registers them all (one module per concern)."""

from __future__ import annotations

from podium.operator.handlers import agents, indexes, lifecycle, orchestrations, teams

__all__ = ["agents", "indexes", "lifecycle", "orchestrations", "teams"]
