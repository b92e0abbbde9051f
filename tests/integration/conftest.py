"""Fixtures shared by the engine integration tests: a client on the session's redis-server, a Bus, a namespace."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from podium.dataplane.acl import agent_acl_rules
from podium.dataplane.bus import Bus
from podium.dataplane.keys import GROUP, AgentKeys


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture
async def bus(client: aioredis.Redis) -> AsyncIterator[Bus]:
    """A Bus over `client` (a module may override `client`, e.g. to reset its fleet first)."""
    b = Bus(client)
    yield b
    await b.close()


@pytest.fixture
def ns() -> str:
    """A namespace of the test's own, so tests sharing one redis-server never see each other's keys."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
async def worker_bus(redis_url: str, client: aioredis.Redis, ns: str) -> AsyncIterator[Bus]:
    """A Bus whose client logs in as agent `worker`'s own Redis ACL user (the rules the operator installs)."""
    user, password = f"agent-{ns}", uuid.uuid4().hex
    await Bus(client).library()  # the operator loads the library; an agent's user may not
    await client.execute_command("ACL", "SETUSER", user, "on", f">{password}", *agent_acl_rules(ns, "worker"))
    await client.xgroup_create(AgentKeys(ns, "worker").inbox, GROUP, id="0", mkstream=True)  # the operator does
    restricted = aioredis.Redis.from_url(redis_url, username=user, password=password)
    b = Bus(restricted)
    yield b
    await b.close()
    await restricted.aclose()
    await client.execute_command("ACL", "DELUSER", user)
