"""Agents as the operator's unit tests build them."""

from __future__ import annotations

from typing import Any

from podium.api.agent import Agent
from podium.operator.agents.children import ChildSettings

SETTINGS = ChildSettings(agent_image="ghcr.io/podium-dev/podium-agent:0.1.0", redis_url="redis://127.0.0.1:6379/0")


def make_agent(**spec: Any) -> Agent:
    base: dict[str, Any] = {"role": "reviewer", "backend": {"command": {"args": ["cat"]}}, "replicas": 2}
    base.update(spec)
    return Agent.model_validate(
        {"metadata": {"name": "rev", "namespace": "team-a", "uid": "u-1", "generation": 1}, "spec": base}
    )
