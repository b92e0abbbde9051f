"""Pure conflict rules: timestamp, priority, three-way merge, consensus tally."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.dataplane.conflicts import (
    Proposal,
    Write,
    check_strategy,
    highest,
    latest,
    resolve,
    same,
    tally,
    three_way_merge,
)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=4)),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=3), json_values, max_size=5)


def w(value: Any, writer: str = "a", at: float = 1.0, priority: int = 0) -> Write:
    return Write("k", value, writer, priority, at, 1)


def test_timestamp_latest_wins_and_ties_break_on_writer_name() -> None:
    assert latest(w(1, "a", at=2.0), w(2, "b", at=1.0)).value == 1
    assert latest(w(1, "a", at=1.0), w(2, "b", at=2.0)).value == 2
    assert latest(w(1, "zed", at=1.0), w(2, "amy", at=1.0)).value == 1
    assert latest(w(1, "amy", at=1.0), w(2, "zed", at=1.0)).value == 2


def test_priority_higher_wins_even_if_older_and_ties_fall_back_to_timestamp() -> None:
    assert highest(w(1, at=9.0, priority=1), w(2, at=1.0, priority=5)).value == 2
    assert highest(w(1, at=9.0, priority=5), w(2, at=1.0, priority=5)).value == 1


def test_merge_takes_one_sided_changes_from_each_side() -> None:
    base = {"plan": "v1", "owner": "a", "notes": {"x": 1}}
    cur = {"plan": "v2", "owner": "a", "notes": {"x": 1, "y": 2}}
    inc = {"plan": "v1", "owner": "b", "notes": {"x": 1}, "new": True}
    merged, conflicts = three_way_merge(base, cur, inc, pick_incoming=True)
    assert merged == {"plan": "v2", "owner": "b", "notes": {"x": 1, "y": 2}, "new": True}
    assert conflicts == []


def test_merge_honours_a_one_sided_deletion() -> None:
    merged, _ = three_way_merge({"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": 2, "c": 3}, pick_incoming=False)
    assert merged == {"a": 1, "c": 3}


def test_merge_true_conflict_goes_to_the_latest_write_and_is_reported() -> None:
    base = {"cfg": {"depth": 1, "width": 1}}
    cur = w({"cfg": {"depth": 2, "width": 1}}, "alice", at=5.0)
    inc = w({"cfg": {"depth": 3, "width": 7}}, "bob", at=4.0)
    res = resolve("merge", base, cur, inc, at=6.0)
    assert res.winner == {"cfg": {"depth": 2, "width": 7}}
    assert res.conflicts == ["cfg.depth"]
    assert "cfg.depth" in res.reason and "alice" in res.reason


def test_merge_of_non_objects_falls_back_to_timestamp() -> None:
    res = resolve("merge", 1, w(2, "a", at=1.0), w(3, "b", at=2.0), at=3.0)
    assert res.winner == 3 and "latest write wins" in res.reason


def test_json_equality_distinguishes_true_from_one() -> None:
    assert not same(True, 1)
    merged, conflicts = three_way_merge({"x": 1}, {"x": True}, {"x": 1}, pick_incoming=True)
    assert merged == {"x": True} and conflicts == []


@settings(max_examples=60, deadline=None)  # shared CI machine: no per-example deadline
@given(base=objects, value=objects)
def test_merging_a_value_with_itself_is_identity(base: dict[str, Any], value: dict[str, Any]) -> None:
    merged, conflicts = three_way_merge(base, value, value, pick_incoming=True)
    assert same(merged, value) and conflicts == []


@settings(max_examples=60, deadline=None)  # shared CI machine: no per-example deadline
@given(base=objects, ours=objects, theirs=objects, pick=st.booleans())
def test_one_sided_changes_always_survive(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], pick: bool
) -> None:
    # current changes only the keys in `ours`, incoming only the keys in `theirs` that `ours` does not touch.
    theirs = {k: v for k, v in theirs.items() if k not in ours}
    current = {**base, **ours}
    incoming = {**base, **theirs}
    merged, conflicts = three_way_merge(base, current, incoming, pick_incoming=pick)
    assert conflicts == []
    for k, v in ours.items():
        assert same(merged[k], v)
    for k, v in theirs.items():
        assert same(merged[k], v)


@settings(max_examples=60, deadline=None)  # shared CI machine: no per-example deadline
@given(base=objects, current=objects, incoming=objects, pick=st.booleans())
def test_merge_result_only_contains_values_from_either_side(
    base: dict[str, Any], current: dict[str, Any], incoming: dict[str, Any], pick: bool
) -> None:
    merged, _ = three_way_merge(base, current, incoming, pick_incoming=pick)
    assert set(merged) <= set(current) | set(incoming)
    for k, v in merged.items():
        if not isinstance(v, dict):
            assert same(v, current.get(k)) or same(v, incoming.get(k))


def p(pid: str) -> Proposal:
    return Proposal(pid, "k", pid, f"writer-{pid}", 1.0)


def test_tally_strict_majority_accepts() -> None:
    votes = {"p1": {"a": True, "b": True, "c": False}}
    winner, reason = tally([p("p1")], votes, ["a", "b", "c"])
    assert winner is not None and winner.id == "p1" and "2 of 3" in reason


def test_tally_half_is_not_a_majority_and_outsiders_do_not_count() -> None:
    votes = {"p1": {"a": True, "b": False, "mallory": True, "eve": True}}
    winner, reason = tally([p("p1")], votes, ["a", "b"])
    assert winner is None and "current value stays" in reason


def test_tally_tie_between_majorities_keeps_current() -> None:
    votes = {"p1": {"a": True, "b": True}, "p2": {"a": True, "b": True}}
    assert tally([p("p1"), p("p2")], votes, ["a", "b", "c"])[0] is None
    votes["p2"]["c"] = True
    winner = tally([p("p1"), p("p2")], votes, ["a", "b", "c"])[0]
    assert winner is not None and winner.id == "p2"


def test_tally_needs_voters_and_consensus_cannot_be_resolved_without_votes() -> None:
    with pytest.raises(ValueError, match="at least one voter"):
        tally([p("p1")], {}, [])
    with pytest.raises(ValueError, match="propose/vote/settle"):
        resolve("consensus", None, w(1), w(2), at=0.0)
    with pytest.raises(ValueError, match="expected one of"):
        check_strategy("loudest")
