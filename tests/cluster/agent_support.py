"""Agents' tasks as the recovery and autoscaler tests dispatch and observe them (shared by their modules)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.keys import GROUP, AgentKeys
from podium.dataplane.library import SEAL_LENGTH
from podium.dataplane.messages import Result, Task
from podium_localcluster.redis_server import RedisServer

from .conftest import ClusterHandle


def executions(admin: redis.Redis, ns: str, name: str, task_id: str) -> int:
    return int(admin.hget(f"podium-test:exec:{ns}:{name}", task_id) or 0)


def dispatch(server: RedisServer, ns: str, name: str, inputs: list[str]) -> list[Task]:
    tasks = [Task(id=f"t-{uuid.uuid4().hex[:8]}", kind="echo", input=i, namespace=ns, agent=name) for i in inputs]

    async def send() -> None:
        r = aioredis.Redis(host=server.host, port=server.port)
        try:
            await Bus(r).dispatch_many(tasks)
        finally:
            await r.aclose()

    asyncio.run(send())
    return tasks


def result(admin: redis.Redis, task: Task) -> Result | None:
    raw = admin.get(AgentKeys(task.namespace, task.agent).result(task.id))
    # The value is the completion function's seal, then the Result JSON (docs/data-plane.md, "Sealed results").
    return None if raw is None else Result.from_json(raw[SEAL_LENGTH:])


def pending_by_replica(admin: redis.Redis, ns: str, name: str) -> dict[str, int]:
    """In-flight entries per consumer (replica) of the agent's inbox group."""
    try:
        summary = admin.xpending(AgentKeys(ns, name).inbox, GROUP)
    except redis.ResponseError:
        return {}
    return {c["name"]: int(c["pending"]) for c in summary.get("consumers") or []}


def pods_of(cluster: ClusterHandle, ns: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", f"podium.dev/agent={name}", "-o", "json")
    return json.loads(out.stdout)["items"] if out.returncode == 0 else []


def events(cluster: ClusterHandle, ns: str, name: str, since: float = 0.0) -> list[dict[str, Any]]:
    """Events about the Agent, oldest first, created at or after ``since`` (epoch seconds)."""
    out = cluster.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json")
    items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    chosen = []
    for e in items:
        if e.get("involvedObject", {}).get("kind") != "Agent":
            continue
        stamp = e.get("lastTimestamp") or e.get("eventTime") or e["metadata"]["creationTimestamp"]
        at = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        if at >= int(since):
            chosen.append(e)
    return sorted(chosen, key=lambda e: e["metadata"]["creationTimestamp"])
