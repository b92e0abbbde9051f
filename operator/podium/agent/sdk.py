"""The SDK of python backends: the run's shared state and messages a task was told, and writes and messages for
the engine to apply. The same as reading ``task.context`` and answering an envelope with ``stateUpdates`` and
``messages`` (docs/agent-runtime.md), for functions that prefer calls::

    from podium.agent import sdk

    def review(task):
        plan = sdk.read("plan", {})                       # the value the task was told (shared state)
        for m in sdk.messages():                          # messages of the agent's subscribed types
            ...
        sdk.write("plan", {**plan, "reviewed": True})     # from the version the task was told: conflicts resolve
        sdk.publish("review.done", {"ok": True})          # to the agents subscribed to review.done
        return {"verdict": "ok"}

Nothing here touches Redis: the agent's Redis user cannot reach the run's keys; the engine applies the writes
through the run's conflict resolution once the task succeeded (and its step was approved, if it needs that).
Calls outside a task raise ``RuntimeError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from podium.dataplane.collab import context_versions


@dataclass
class Effects:
    """What the task running now was told, and what its function asked for so far."""

    context: dict[str, Any] | None
    state_updates: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


_CURRENT: ContextVar[Effects | None] = ContextVar("podium_sdk_effects", default=None)


def _current() -> Effects:
    effects = _CURRENT.get()
    if effects is None:
        raise RuntimeError("podium.agent.sdk is only usable while a task runs (inside the backend's function)")
    return effects


@contextmanager
def collecting(context: dict[str, Any] | None) -> Iterator[Effects]:
    """Around one task (the runtime's): SDK calls inside record into the yielded Effects. Worker threads of
    ``asyncio.to_thread`` inherit it, so sync functions record too."""
    effects = Effects(context)
    token = _CURRENT.set(effects)
    try:
        yield effects
    finally:
        _CURRENT.reset(token)


def _values() -> dict[str, Any]:
    return ((_current().context or {}).get("blackboard") or {}).get("values") or {}


def state() -> dict[str, Any]:
    """Every shared key the task was told, by key (values only)."""
    return {k: v.get("value") for k, v in _values().items()}


def read(key: str, default: Any = None) -> Any:
    """A shared key's value as the task was told it; ``default`` when it was not told or the key is unset."""
    found = _values().get(key)
    value = found.get("value") if isinstance(found, dict) else None
    return default if value is None else value


def version(key: str) -> int:
    """The version of a key the task was told (0: never written, or not told)."""
    return context_versions(_current().context).get(key, 0)


def changes() -> list[dict[str, Any]]:
    """Changes of the agent's keys since its previous task of the run (writes, resolutions, rollbacks)."""
    return list(((_current().context or {}).get("blackboard") or {}).get("changes") or [])


def messages() -> list[dict[str, Any]]:
    """Messages of the agent's subscribed types that came with this task, oldest first."""
    return list((_current().context or {}).get("messages") or [])


def write(key: str, value: Any, *, base_version: int | None = None) -> None:
    """Ask the engine to set a shared key. The base is the version the task was told (``base_version``
    overrides it): if someone wrote the key since, the run's conflictResolution decides."""
    update: dict[str, Any] = {"key": key, "value": value}
    if base_version is not None:
        update["baseVersion"] = base_version
    _current().state_updates.append(update)


def publish(type: str, payload: Any = None) -> None:
    """Publish a message to the run: the agents subscribed to ``type`` get it with their next task."""
    _current().messages.append({"type": type, "payload": payload})
