"""The pure rules of cancellation: which tasks a cancelled-set member covers, the result, the ACL."""

from __future__ import annotations

import pytest

from podium.dataplane.cancellation import cancelled_result, member, task_member, why_cancelled
from podium.dataplane.messages import Task


def task(orch: str, uid: object = "u1") -> Task:
    return Task(id="t1", kind="execute", input=None, namespace="ns", agent="a", orchestration=orch, meta={"uid": uid})


def is_cancelled(t: Task, cancelled: set[str]) -> bool:
    return why_cancelled(t, cancelled) is not None


def test_a_name_member_covers_every_run_and_a_uid_member_only_its_own() -> None:
    assert is_cancelled(task("ns/o"), {member("ns/o")})
    assert is_cancelled(task("ns/o", uid="u1"), {member("ns/o", "u1")})
    assert not is_cancelled(task("ns/o", uid="u2"), {member("ns/o", "u1")})
    assert not is_cancelled(task("ns/other"), {member("ns/o")})
    assert not is_cancelled(task(""), {member("ns/o")})  # a task outside any orchestration is never cancelled
    assert not is_cancelled(task("ns/o", uid=7), {"ns/o@7"})


def test_a_task_member_covers_that_task_only_and_says_it_was_withdrawn() -> None:
    assert why_cancelled(task("ns/o"), {task_member("t1")}) == (
        "withdrawn: orchestration ns/o stopped waiting for this attempt (task t1)"
    )
    assert not is_cancelled(task("ns/o"), {task_member("t2")})
    assert task_member("t1") != member("ns/o")  # '#' is in no namespace or name: the two kinds never collide


def test_member_rejects_bad_references() -> None:
    with pytest.raises(ValueError, match="<namespace>/<name>"):
        member("o")
    with pytest.raises(ValueError, match="uid"):
        member("ns/o", "a b")


def test_the_cancelled_result_is_a_failure_that_names_the_orchestration() -> None:
    result = cancelled_result(task("ns/o"), "r1", why_cancelled(task("ns/o"), {member("ns/o")}) or "")
    assert not result.ok and result.error == "cancelled: orchestration ns/o was deleted or its run ended"
    assert (result.task_id, result.attempt, result.replica, result.agent) == ("t1", 1, "r1", "a")
