"""Each agent's own Redis user, against a real redis-server: what its replicas can and cannot touch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError

from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.purge import purge_agent
from podium.operator.agents import redis_io
from podium.operator.agents.children import redis_username
from podium_localcluster.redis_server import RedisServer


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis(host=redis_server.host, port=redis_server.port)
    yield r
    await r.aclose()


async def login(server: RedisServer, ns: str, agent: str, password: str) -> aioredis.Redis:
    r = aioredis.Redis(host=server.host, port=server.port, username=redis_username(ns, agent), password=password)
    await r.ping()
    return r


async def test_agent_user_reaches_only_its_own_keys(redis_server: RedisServer, admin: aioredis.Redis) -> None:
    password = redis_io.new_password()
    await redis_io.ensure_acl_user(admin, "acl-ns", "rev", password)
    assert await redis_io.acl_user_exists(admin, "acl-ns", "rev")
    own = await login(redis_server, "acl-ns", "rev", password)
    try:
        await own.xadd(AgentKeys("acl-ns", "rev").inbox, {"t": "{}"})
        assert await own.xlen(AgentKeys("acl-ns", "rev").inbox) >= 1
        with pytest.raises(NoPermissionError):
            await own.xlen(AgentKeys("acl-ns", "other").inbox)
        with pytest.raises(NoPermissionError):
            await own.set("unrelated", "x")
        # The run's shared state, its messages and approvals are the engine's to write: an agent's answer asks.
        # (A run named like the agent shares its hash tag, and still stays out of reach.)
        run = OrchestrationKeys("acl-ns", "rev")
        for key in (run.state_keys.values, run.approvals("u"), run.cursors("u")):
            with pytest.raises(NoPermissionError):
                await own.hget(key, "any")
            with pytest.raises(NoPermissionError):
                await own.hset(key, "any", "{}")
        for key in (run.state_keys.history, run.events):
            with pytest.raises(NoPermissionError):
                await own.xrange(key)
            with pytest.raises(NoPermissionError):
                await own.xadd(key, {"type": "forged"})
    finally:
        await own.aclose()


async def test_reapplying_is_idempotent_and_rotates_password(redis_server: RedisServer, admin: aioredis.Redis) -> None:
    await redis_io.ensure_acl_user(admin, "acl-ns", "rot", "first-password")
    await redis_io.ensure_acl_user(admin, "acl-ns", "rot", "first-password")
    (await login(redis_server, "acl-ns", "rot", "first-password"))
    await redis_io.ensure_acl_user(admin, "acl-ns", "rot", "second-password")
    with pytest.raises(AuthenticationError):
        await login(redis_server, "acl-ns", "rot", "first-password")


async def test_deleting_removes_user_and_keys(redis_server: RedisServer, admin: aioredis.Redis) -> None:
    await redis_io.ensure_acl_user(admin, "acl-ns", "gone", "pw-gone-123")
    keys = AgentKeys("acl-ns", "gone")
    await admin.xadd(keys.inbox, {"t": "{}"})
    await admin.hset(keys.heartbeats, "r1", "0.1 0 1 1000")
    assert await redis_io.delete_acl_user(admin, "acl-ns", "gone")
    assert not await redis_io.acl_user_exists(admin, "acl-ns", "gone")
    assert not await redis_io.delete_acl_user(admin, "acl-ns", "gone")
    assert await purge_agent(admin, "acl-ns", "gone") == 2
    assert await admin.exists(keys.inbox, keys.heartbeats) == 0
    with pytest.raises(AuthenticationError):
        await login(redis_server, "acl-ns", "gone", "pw-gone-123")


async def test_runtime_reads_heartbeats_and_backlog(admin: aioredis.Redis) -> None:
    keys = AgentKeys("rt-ns", "a")
    now_ms = int((await redis_io.redis_now(admin)) * 1000)
    await admin.hset(keys.heartbeats, mapping={"a-1": f"0.5 2 {now_ms} 10000", "junk": "x"})
    await admin.xadd(keys.inbox, {"t": "{}"})
    rt = await redis_io.read_runtime(admin, "rt-ns", "a")
    assert rt.backlog == 1
    assert rt.heartbeats is not None
    (beat,) = rt.heartbeats
    assert beat.replica == "a-1" and beat.in_flight == 2 and abs(beat.last_seen - rt.now) < 5
    assert rt.stats is None  # no tasks yet
