"""What outlives a run in Redis and is read from outside the engine: the spec it started with, its stored result,
the agents its journals name.

A result too large for the Orchestration's status is stored under ``OrchestrationKeys.result(uid)`` and
referenced from ``status.resultRef`` as ``redis:<key>``; the operator writes it, `podium run result` reads it.
The spec a run started with is pinned under ``OrchestrationKeys.spec(uid)``: a run taken up again (an operator
restart, another replica) goes on with it, not with an edit of the Orchestration made since (but for its limits, which
a running run follows: :func:`repin_spec`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as aioredis

from podium.dataplane import codec
from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.records import decode_entry

REF_PREFIX = "redis:"


def result_key(namespace: str, name: str, uid: str) -> str:
    # The uid keeps a re-created Orchestration of the same name from reading its predecessor's result.
    return OrchestrationKeys(namespace, name).result(uid)


async def pin_spec(redis: aioredis.Redis, namespace: str, name: str, uid: str, spec: Mapping[str, Any]) -> Any:
    """The spec the run ``uid`` started with: the one pinned before, else ``spec``, pinned now (in one command, so
    two replicas taking the same run up cannot pin two)."""
    key = OrchestrationKeys(namespace, name).spec(uid)
    pinned = await redis.set(key, codec.dumps(dict(spec)), nx=True, get=True)  # with GET: the value before, or None
    return dict(spec) if pinned is None else codec.loads(cast(bytes, pinned))


async def repin_spec(redis: aioredis.Redis, namespace: str, name: str, uid: str, spec: Mapping[str, Any]) -> None:
    """The pinned spec of the run ``uid`` replaced by ``spec`` (the parts of an edit a running run follows: its
    limits), so that a run taken up again goes on with them too."""
    await redis.set(OrchestrationKeys(namespace, name).spec(uid), codec.dumps(dict(spec)), xx=True)


def result_ref(key: str) -> str:
    """The reference status.resultRef holds for a result stored under ``key``."""
    return REF_PREFIX + key


async def store_result(redis: aioredis.Redis, key: str, encoded: str) -> None:
    await redis.set(key, encoded)


async def load_result(redis: aioredis.Redis, ref: str) -> Any:
    """The result a ``status.resultRef`` points at; ValueError for a reference of another kind, LookupError when
    it is gone."""
    if not ref.startswith(REF_PREFIX):
        raise ValueError(f"unknown result reference {ref!r}: expected '{REF_PREFIX}<key>'")
    raw = await redis.get(ref.removeprefix(REF_PREFIX))
    if raw is None:
        raise LookupError(f"the result at {ref} has expired or was deleted")
    return json.loads(raw)


async def journal_agents(redis: aioredis.Redis, namespace: str, name: str) -> set[str]:
    """Every agent a run of this orchestration dispatched to (any uid, retries included), from its journals."""
    agents: set[str] = set()
    async for key in redis.scan_iter(match=OrchestrationKeys(namespace, name).journals, count=500):
        for raw in (await redis.hgetall(key)).values():
            entry = decode_entry(raw)
            agents.add(entry.agent)
            agents.update(entry.history)
    agents.discard("")
    return agents
