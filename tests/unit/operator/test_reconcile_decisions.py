"""The Agent reconciler's decisions, made before it acts: which children and which Events."""

from __future__ import annotations

from podium.operator.agents.reconcile import apply_events, desired_children, status_events
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
