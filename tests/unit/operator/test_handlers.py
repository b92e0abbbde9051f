"""The operator's kopf handlers are registered once the settings are known, never at import."""

from __future__ import annotations

import importlib

import kopf

from podium.operator import handlers
from podium.operator.settings import Settings


def _ids(registry: kopf.OperatorRegistry) -> dict[str, list[str]]:
    # kopf offers no public listing; its registry keeps one resource registry per kind of handler.
    groups = {"activities": registry._activities, "indexing": registry._indexing}
    groups |= {"spawning": registry._spawning, "changing": registry._changing}
    return {name: sorted(h.id for h in group.get_all_handlers()) for name, group in groups.items()}


def test_timers_run_at_the_intervals_of_the_settings_given_at_registration() -> None:
    registry = handlers.register(kopf.OperatorRegistry(), Settings(health_interval_seconds=7, team_interval_seconds=11))
    timers = {h.id: h for h in registry._spawning.get_all_handlers() if getattr(h, "interval", None) is not None}
    assert (timers["health"].interval, timers["health"].initial_delay) == (7, 7)
    assert (timers["watch_members"].interval, timers["watch_members"].initial_delay) == (11, 11)
    # A round that failed (Redis restarting under it) is tried again at the next interval, not kopf's 60 s later:
    # after a Redis restart that was a minute of an agent locked out, every run waiting on it failing.
    assert (timers["health"].backoff, timers["watch_members"].backoff) == (7, 11)


def test_every_kind_gets_its_handlers_and_the_start_up_builds_the_runtime() -> None:
    ids = _ids(handlers.register(kopf.OperatorRegistry(), Settings()))
    assert ids["activities"] == ["login_via_client", "start", "stop"]  # a fresh registry has no login of its own
    assert ids["indexing"] == ["agent_deployments", "agent_pods", "agents_by_namespace"]
    # Runs are not kopf daemons: every replica's sharder drives them (kopf peering would keep them on one).
    assert ids["spawning"] == ["health", "watch_members"]
    # Nor are their objects kopf's: the sharder guards, cleans up and notes them (kopf would read every status patch).
    assert "spec_changed/spec" not in ids["changing"] and ids["changing"].count("cleanup") == 1


def test_importing_the_handler_modules_registers_nothing() -> None:
    default = kopf.get_default_registry()
    before = _ids(default)
    for module in ("lifecycle", "indexes", "agents.handlers", "teams.handlers", "orchestrations.handlers"):
        importlib.reload(importlib.import_module(f"podium.operator.{module}"))
    assert _ids(default) == before
