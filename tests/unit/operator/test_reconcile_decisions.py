"""The Agent reconciler's decisions, made before it acts: which children and which Events."""

from __future__ import annotations

import time

from podium.operator.agents.reconcile import (
    MISSING_DEPLOYMENT_SECONDS,
    AgentReconciler,
    Memory,
    apply_events,
    desired_children,
    status_events,
)
from podium.operator.settings import Settings
from tests.support.agents import SETTINGS, make_agent


def test_a_bad_template_still_applies_the_other_children_and_keeps_the_deployment() -> None:
    desired = desired_children(make_agent(template={"hostNetwork": True}), "pw", SETTINGS, None)
    assert list(desired.manifests) == ["Secret", "ConfigMap", "Service"]
    assert desired.error is not None and "hostNetwork" in desired.error


def test_a_good_spec_gives_every_child_in_apply_order_and_keeps_a_scaled_deployment() -> None:
    old = {"spec": {"replicas": 5}, "metadata": {"annotations": {"podium.dev/applied-replicas": "2"}}}
    desired = desired_children(make_agent(replicas=2), "pw", SETTINGS, old)
    assert list(desired.manifests) == ["Secret", "ConfigMap", "Service", "Deployment"] and desired.error is None
    assert desired.manifests["Deployment"]["spec"]["replicas"] == 5  # someone scaled it; the spec did not change


def test_only_changes_are_announced() -> None:
    outcomes = {"Secret": "unchanged", "Service": "created", "Deployment": "scaled"}
    assert apply_events(outcomes, "ns", "rev", 3) == [
        ("Normal", "Created", "created Service ns/rev"),
        ("Normal", "Scaled", "Deployment replicas set to 3"),
    ]
    # A new Agent's four children are one Event (one API write), not four.
    created = dict.fromkeys(["Secret", "ConfigMap", "Service", "Deployment"], "created")
    assert apply_events(created, "ns", "rev", 1) == [
        ("Normal", "Created", "created Secret, ConfigMap, Service, Deployment ns/rev")
    ]
    assert status_events({"phase": "Ready"}, {"phase": "Degraded"}) == [
        ("Warning", "PhaseDegraded", "phase Ready -> Degraded")
    ]
    assert status_events({}, {"phase": "Ready"}) == [] and status_events({"phase": "Ready"}, {"phase": "Ready"}) == []


def test_a_breaker_change_is_announced_once_with_its_count() -> None:
    closed = {"phase": "Ready", "breaker": {"state": "closed", "failures": 4}}
    opened = {"phase": "Degraded", "breaker": {"state": "open", "failures": 5, "openedAt": "2025-01-01T00:00:00Z"}}
    assert status_events(closed, opened) == [
        ("Warning", "BreakerOpened", "circuit breaker closed -> open (5 failures in a row)"),
        ("Warning", "PhaseDegraded", "phase Ready -> Degraded"),
    ]
    assert status_events(opened, opened) == []
    probing = {**opened, "breaker": {"state": "halfOpen", "failures": 5}}
    assert status_events(opened, probing)[0][:2] == ("Normal", "BreakerHalfOpen")
    recovered = {"phase": "Ready", "breaker": {"state": "closed", "failures": 0}}
    assert status_events(probing, recovered)[0][:2] == ("Normal", "BreakerClosed")
    assert status_events({}, recovered) == []  # first sight of a closed breaker: nothing changed


def test_the_health_round_applies_a_missing_deployment_again_only_well_after_the_last_apply() -> None:
    agents = AgentReconciler(None, None, Settings(resync_seconds=120), lambda *_: None)  # type: ignore[arg-type]
    mem = agents.remember("ns", "rev")
    mem.last_apply = time.monotonic() - 1  # its creation under way: the Deployment is not in the index yet
    assert not agents.due_for_apply("ns", "rev", deployment_seen=False)
    mem.last_apply = time.monotonic() - MISSING_DEPLOYMENT_SECONDS - 1  # deleted by hand, or that apply failed
    assert agents.due_for_apply("ns", "rev", deployment_seen=False)
    assert not agents.due_for_apply("ns", "rev", deployment_seen=True)
    mem.last_apply = time.monotonic() - 121  # the resync: drift, a Redis user lost with a restart
    assert agents.due_for_apply("ns", "rev", deployment_seen=True)


def test_what_an_apply_parsed_and_built_is_made_again_only_when_what_it_is_made_of_changed() -> None:
    mem, made = Memory(), []

    def make() -> int:
        made.append(1)
        return len(made)

    assert mem.cached("desired", ("uid", 1), make) == 1
    assert mem.cached("desired", ("uid", 1), make) == 1  # a resync of the same generation: nothing built again
    assert mem.cached("desired", ("uid", 2), make) == 2  # the spec changed
    assert mem.cached("parsed", ("uid", 2), make) == 3  # another slot
    assert mem.cached("desired", None, make) == 4 and mem.cached("desired", None, make) == 5  # no key: made each time
    assert mem.cached("desired", ("uid", 2), make) == 2  # and the last keyed one is still there
