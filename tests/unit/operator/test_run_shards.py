"""Which operator replica owns which run (rendezvous hashing) and what a replica does each round (pure)."""

from __future__ import annotations

from typing import Any

from podium.api.common import FINALIZER
from podium.operator.orchestrations.shards import chores, group_of, owner, plan


def run(name: str, phase: str | None = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "uid": f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase} if phase else {}}


RUNS = [run(f"r{i}") for i in range(200)]


def owners(members: list[str]) -> dict[str, str | None]:
    return {r["metadata"]["uid"]: owner(r["metadata"]["uid"], members) for r in RUNS}


def test_every_replica_agrees_and_runs_spread_over_all_of_them() -> None:
    three = owners(["a", "b", "c"])
    assert three == owners(["c", "a", "b"])  # the order replicas are listed in does not matter
    counts = {m: sum(1 for o in three.values() if o == m) for m in "abc"}
    assert all(40 <= n <= 95 for n in counts.values()), counts
    assert owner("x", []) is None


def test_a_replica_leaving_moves_only_its_own_runs() -> None:
    before, after = owners(["a", "b", "c"]), owners(["a", "b"])
    moved = {uid for uid in before if before[uid] != after[uid]}
    assert moved == {uid for uid, o in before.items() if o == "c"}
    assert all(after[uid] in ("a", "b") for uid in moved)


def test_a_round_takes_its_active_runs_and_stops_those_that_moved_finished_or_are_deleted() -> None:
    members = ["a", "b"]
    mine = [r for r in RUNS if owner(r["metadata"]["uid"], members) == "a"]
    theirs = [r for r in RUNS if owner(r["metadata"]["uid"], members) == "b"]
    ref = lambda r: ("ns", r["metadata"]["name"], r["metadata"]["uid"])  # noqa: E731
    finished = {**mine[0], "status": {"phase": "Succeeded"}}
    deleting = run(mine[1]["metadata"]["name"], deleting=True)
    bodies = [finished, deleting, *mine[2:], *theirs]
    driving = [ref(mine[0]), ref(mine[1]), ref(mine[2]), ref(theirs[0])]
    decided = plan("a", members, bodies, driving)
    assert decided.stop == {ref(mine[0]), ref(mine[1]), ref(theirs[0])}
    assert decided.take == {ref(r) for r in mine[3:]}
    pending = run("new", phase=None)  # not started yet (no phase): someone must drive it to start it
    assert plan(owner("uid-new", members) or "", members, [pending], []).take == {("ns", "new", "uid-new")}


def test_replicas_share_runs_only_with_replicas_watching_the_same_namespaces() -> None:
    assert group_of([]) == "all"
    assert group_of(["b", "a"]) == group_of(["a", "b", "a"]) == "ns.a.b"
    assert group_of(["team-a"]) != group_of(["team-b"])
    long = group_of([f"namespace-{i}" for i in range(40)])
    assert long.startswith("ns.") and len(long) < 100


def test_the_owner_of_a_run_looks_after_its_object_finished_or_not_and_no_one_else_does() -> None:
    members = ["a", "b"]
    mine = [r for r in RUNS if owner(r["metadata"]["uid"], members) == "a"][:6]
    theirs = [r for r in RUNS if owner(r["metadata"]["uid"], members) == "b"][:2]

    def having(body: dict[str, Any], *, phase: str = "Running", generation: int = 1, observed: int = 1,
               finalizers: tuple[str, ...] = (FINALIZER,), deleting: bool = False) -> dict[str, Any]:  # fmt: skip
        meta = {**body["metadata"], "generation": generation, "finalizers": list(finalizers)}
        if deleting:
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        return {"metadata": meta, "status": {"phase": phase, "observedGeneration": observed}}

    new = having(mine[0], finalizers=())  # not guarded yet
    finished_new = having(mine[1], phase="Succeeded", finalizers=("someone.else/keep",))
    deleted = having(mine[2], deleting=True, finalizers=("someone.else/keep", FINALIZER))
    edited_after_the_end = having(mine[3], phase="Failed", generation=2, observed=1)
    edited_while_running = having(mine[4], generation=2, observed=1)  # the drive reads the change itself
    settled = having(mine[5], phase="Succeeded")
    gone_unguarded = having(mine[0], deleting=True, finalizers=("someone.else/keep",))  # not ours to hold
    others = [having(theirs[0], finalizers=()), having(theirs[1], deleting=True)]
    runs = [new, finished_new, deleted, edited_after_the_end, edited_while_running, settled, *others]
    todo = chores("a", members, runs)
    assert [b["metadata"]["name"] for b in todo.guard] == [mine[0]["metadata"]["name"], mine[1]["metadata"]["name"]]
    assert [b["metadata"]["name"] for b in todo.finalize] == [mine[2]["metadata"]["name"]]
    assert [b["metadata"]["name"] for b in todo.note] == [mine[3]["metadata"]["name"]]
    assert chores("a", members, [gone_unguarded]) == chores("a", members, []) == chores("c", members, runs)
    # "b" looks after its own two: one to guard, one to finalize.
    assert (len(chores("b", members, runs).guard), len(chores("b", members, runs).finalize)) == (1, 1)
