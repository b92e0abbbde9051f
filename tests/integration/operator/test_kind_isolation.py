"""An Agent and an Orchestration with the same name in one namespace: separate key spaces. Deleting either (the
operator's own deletion code) leaves every key of the other; the agent's Redis user cannot read the run's keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from podium.dataplane import runs
from podium.dataplane.bus import Bus
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.messages import Result, Task
from podium.dataplane.state import SharedState
from podium.dataplane.usage import UsageCounters
from podium.engine.journal import Entry, Journal
from podium.operator.agents import redis_io
from podium.operator.agents.children import redis_username
from podium.operator.agents.reconcile import AgentReconciler
from podium.operator.orchestrations import run as orchestration_run
from podium.operator.settings import Settings
from podium_localcluster.redis_server import RedisServer

NAME = "twin"


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def keys_of(r: aioredis.Redis, pattern: str) -> set[bytes]:
    return {k async for k in r.scan_iter(match=pattern)}


async def write_run(r: aioredis.Redis, bus: Bus, ns: str, uid: str) -> None:
    """A run's keys, written by the modules that own them."""
    await Journal(r, ns, NAME, uid).put(Entry(step="s1", state="done", task_id="t", agent=NAME, attempt=1))
    await UsageCounters(r, ns, NAME).claim(uid, time.time())
    await bus.publish(f"{ns}/{NAME}", "note", {"x": 1}, sender="engine")
    await SharedState(r, ns, NAME).set("k", {"v": 1}, writer="engine")
    await runs.store_result(r, runs.result_key(ns, NAME, uid), '{"final": true}')


async def write_agent(bus: Bus, ns: str) -> None:
    """The agent's keys: a result recorded through its consumer, heartbeats, a task still queued."""
    done = Task(id="done-1", kind="execute", input=1, namespace=ns, agent=NAME)
    await bus.dispatch(done)
    consumer = bus.consumer(ns, NAME, f"{NAME}-0")
    [delivery] = await consumer.fetch(1, 1000)
    assert await consumer.complete(delivery, Result(task_id=done.id, attempt=1, ok=True, output="kept"))
    await bus.dispatch(Task(id="queued-1", kind="execute", input=2, namespace=ns, agent=NAME))


async def test_deleting_either_kind_leaves_the_others_keys(redis_server: RedisServer, r: aioredis.Redis) -> None:
    ns = "k" + uuid.uuid4().hex[:8]
    agent, run = AgentKeys(ns, NAME), OrchestrationKeys(ns, NAME)
    password = redis_io.new_password()
    await redis_io.ensure_acl_user(r, ns, NAME, password)
    async with Bus(r) as bus:
        await write_agent(bus, ns)
        await write_run(r, bus, ns, "uid-1")
        agent_before, run_before = await keys_of(r, agent.pattern), await keys_of(r, run.pattern)
        assert len(agent_before) >= 4 and len(run_before) >= 6 and not agent_before & run_before

        # The agent's own user cannot read nor write the run's keys, whatever they are.
        own = aioredis.Redis(
            host=redis_server.host, port=redis_server.port, username=redis_username(ns, NAME), password=password
        )
        try:
            for key in run_before:
                with pytest.raises(NoPermissionError):
                    await own.type(key)
                with pytest.raises(NoPermissionError):
                    await own.get(key)
        finally:
            await own.aclose()

        # Deleting the Orchestration: its keys go, the Agent's stay (its queued task and result included).
        await orchestration_run.cleanup(r, ns, NAME, "uid-1", agents=[NAME])
        assert await keys_of(r, run.pattern) == set()
        assert agent_before <= await keys_of(r, agent.pattern)
        stored = await bus.get_result(Task(id="done-1", kind="execute", input=1, namespace=ns, agent=NAME))
        assert stored is not None and stored.output == "kept"
        assert await bus.queue_depth(ns, NAME) == 1

        # Deleting the Agent (the operator's reconciler): its keys and user go, the run's stay.
        await write_run(r, bus, ns, "uid-2")
        run_before = await keys_of(r, run.pattern)
        reconciler = AgentReconciler(None, r, Settings(), lambda *_: None)  # type: ignore[arg-type]
        body: dict[str, Any] = {"metadata": {"namespace": ns, "name": NAME}}
        await reconciler.delete(body)
        assert await keys_of(r, agent.pattern) == set()
        assert not await redis_io.acl_user_exists(r, ns, NAME)
        assert await keys_of(r, run.pattern) == run_before
        assert await runs.load_result(r, runs.result_ref(runs.result_key(ns, NAME, "uid-2"))) == {"final": True}
