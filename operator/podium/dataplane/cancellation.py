"""Cancelling an orchestration's queued tasks: the rules (pure) and the per-agent Redis side.

The operator marks the orchestration in each agent's ``cancelled`` set and deletes its undelivered inbox
entries (the library's ``podium_cancel``, one agent per call). Entries already delivered cannot be taken
back from a replica, so :class:`podium.dataplane.consumer.InboxConsumer` checks the set and settles the cancelled
ones with a failed Result instead of handing them out: nothing runs, nothing stays pending, and the bus still
records exactly one result per task id + attempt (its result key is the dedupe marker).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from podium.dataplane.keys import GROUP, RELEASED, AgentKeys, check_name, split_ref
from podium.dataplane.messages import Result, Task
from podium.dataplane.redisutil import text

if TYPE_CHECKING:
    from podium.dataplane.bus import Bus

SCAN_BATCH = 1000  # inbox entries one CANCEL call looks at: bounds how long one call holds Redis


def member(orchestration: str, uid: str | None = None) -> str:
    """The ``cancelled`` set member: ``ns/name`` (every run of that name) or ``ns/name@uid`` (one run)."""
    split_ref(orchestration)
    if uid is None:
        return orchestration
    return f"{orchestration}@{check_name(uid, 'uid')}"


def task_member(task_id: str) -> str:
    """The ``cancelled`` set member of one withdrawn task ('#' is in no namespace or name)."""
    return f"#{task_id}"


def why_cancelled(task: Task, cancelled: Collection[str]) -> str | None:
    """Why a delivered task must not run (the error of the result its consumer records), or None when it may."""
    if not task.orchestration or not cancelled:
        return None
    if task_member(task.id) in cancelled:
        return f"withdrawn: orchestration {task.orchestration} stopped waiting for this attempt (task {task.id})"
    uid = task.meta.get("uid")
    if task.orchestration in cancelled or (isinstance(uid, str) and f"{task.orchestration}@{uid}" in cancelled):
        return f"cancelled: orchestration {task.orchestration} was deleted or its run ended"
    return None


def cancelled_result(task: Task, replica: str, why: str) -> Result:
    return Result(task_id=task.id, attempt=task.attempt, ok=False, error=why, agent=task.agent, replica=replica)


async def cancel(bus: Bus, orchestration: str, agents: Iterable[str], uid: str | None = None) -> dict[str, int]:
    """Cancel ``orchestration`` ("ns/name") on each agent of its namespace; undelivered entries removed, by agent.

    With ``uid`` only that run's tasks (``task.meta["uid"]``) are cancelled, so a re-created Orchestration of
    the same name is not affected. The mark lasts ``bus.result_ttl_seconds`` (as long as a result key).
    """
    namespace, _name = split_ref(orchestration)
    mark = member(orchestration, uid)
    return {
        agent: await _scan(bus, AgentKeys(namespace, agent), [mark, orchestration, uid or ""])
        for agent in sorted(set(agents))
    }


async def withdraw(bus: Bus, task: Task) -> bool:
    """Take back one task its orchestration no longer waits for: True when its undelivered entry was deleted; else
    (delivered already) its consumers settle it as withdrawn without running it, unless a replica has started it."""
    keys = AgentKeys(task.namespace, task.agent)
    return bool(await _scan(bus, keys, [task_member(task.id), task.orchestration, ""], task.id))


async def queued(bus: Bus, task: Task) -> bool:
    """Whether ``task`` still waits in its agent's inbox, handed to no replica: not delivered yet, or handed back by
    the replica that read it (a replica whose backend went down hands back what it had not started), among the first
    SCAN_BATCH of each. Read only: :func:`withdraw` would also mark a delivered task for its replica to drop, and a
    caller that only wants to take back what no replica holds looks first."""
    inbox = AgentKeys(task.namespace, task.agent).inbox
    try:
        groups = await bus.redis.xinfo_groups(inbox)
    except ResponseError:  # no inbox: nothing waits in it
        return False
    start = next((text(g["last-delivered-id"]) for g in groups if text(g["name"]) == GROUP), "0-0")
    rows = await bus.redis.xrange(inbox, min=f"({start}", count=SCAN_BATCH)
    if any(_task_id(fields) == task.id for _, fields in rows or []):
        return True
    released = await bus.redis.xpending_range(inbox, GROUP, "-", "+", SCAN_BATCH, consumername=RELEASED)
    if not released:
        return False
    async with bus.redis.pipeline(transaction=False) as pipe:
        for entry in released:
            pipe.xrange(inbox, min=entry["message_id"], max=entry["message_id"])
        replies = await pipe.execute()
    return any(_task_id(fields) == task.id for rows in replies for _, fields in rows or [])


def _task_id(fields: dict[Any, Any] | None) -> str | None:
    """The task id an inbox entry carries (its field ``i``; bytes, or str from a decoding client)."""
    raw = (fields or {}).get(b"i", (fields or {}).get("i"))
    return None if raw is None else text(raw)


async def cancelled(bus: Bus, task: Task) -> bool:
    """Whether ``task``'s run is marked cancelled on its agent (deleted, or ended) or the attempt withdrawn: the marks
    its consumers honour (read only)."""
    marks = await bus.redis.smembers(AgentKeys(task.namespace, task.agent).cancelled)
    return why_cancelled(task, {text(m) for m in marks}) is not None


async def _scan(bus: Bus, keys: AgentKeys, what: list[str], task_id: str | None = None) -> int:
    """``podium_cancel`` over the agent's undelivered entries, SCAN_BATCH a call, until its cursor comes back empty
    (with ``task_id``: also as soon as that task's entry is deleted); the number of entries deleted."""
    cursor, removed = "", 0
    while True:
        args = [*what, bus.result_ttl_seconds, cursor, SCAN_BATCH, *([task_id] if task_id else [])]
        reply = await bus.call("podium_cancel", [keys.inbox, keys.cancelled], args)
        removed += int(reply[0])
        cursor = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        if not cursor:
            return removed
