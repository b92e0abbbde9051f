"""Each agent's own Redis user, against a real redis-server: what its replicas can and cannot touch.

The sweep asks Redis itself (ACL DRYRUN) about every command it knows, so the list of what an agent's user may
run is Redis's answer, not a reading of our own rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from podium.dataplane.acl import allowed_commands
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.purge import purge_agent
from podium.dataplane.scripts import AGENT_FUNCTIONS, AGENT_READ_ONLY_FUNCTIONS
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


async def dry_run(admin: aioredis.Redis, user: str, *args: str) -> str:
    """Redis's verdict on ``user`` running ``args``: "OK" or its refusal."""
    try:
        reply = await admin.execute_command("ACL", "DRYRUN", user, *args)
        return reply.decode() if isinstance(reply, bytes) else str(reply)
    except ResponseError as exc:
        return str(exc)


async def permitted(admin: aioredis.Redis, user: str, command: str, arity: int) -> bool:
    """Whether ``user`` may run ``command`` on some key: any answer but "no permissions to run" (a refused key
    still means the command itself is granted)."""
    words = command.split("|")
    for padding in range(4):
        args = [*words, *["0"] * (max(abs(arity), len(words)) - len(words) + padding)]
        verdict = await dry_run(admin, user, *args)
        if "no permissions to run" in verdict:
            return False
        if "wrong number of arguments" not in verdict:
            return True
    raise AssertionError(f"no argument count satisfies {command} (arity {arity})")


async def test_agent_user_reaches_only_its_own_keys(redis_server: RedisServer, admin: aioredis.Redis) -> None:
    password = redis_io.new_password()
    await redis_io.ensure_acl_user(admin, "acl-ns", "rev", password)
    assert await redis_io.acl_user_exists(admin, "acl-ns", "rev")
    own = await login(redis_server, "acl-ns", "rev", password)
    try:
        assert await own.xrange(AgentKeys("acl-ns", "rev").inbox) == []  # its group exists: the operator made it
        with pytest.raises(NoPermissionError):
            await own.xadd(AgentKeys("acl-ns", "rev").inbox, {"t": "{}"})  # only the operator fills an inbox
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


async def test_the_agent_user_may_run_exactly_these_commands_on_exactly_these_keys(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await redis_io.ensure_acl_user(admin, "acl-ns", "swept", "pw-swept-123")
    user = redis_username("acl-ns", "swept")
    keys = AgentKeys("acl-ns", "swept")
    expected = allowed_commands()
    # Every command and subcommand this Redis knows, asked one by one.
    names = [n.decode() if isinstance(n, bytes) else n for n in await admin.command_list()]
    infos = await admin.execute_command("COMMAND", "INFO", *names)  # redis-py: {name: {"arity": ...}}
    arity = {name: int(info["arity"]) for name, info in infos.items()}
    assert len(arity) == len(names) > 200
    containers = {name.split("|")[0] for name in names if "|" in name}  # asked about through their subcommands
    allowed = {
        name for name, a in sorted(arity.items()) if name not in containers and await permitted(admin, user, name, a)
    }
    # AUTH, QUIT and RESET are every connection's (Redis never refuses them by ACL); the rest is exactly what the
    # rules grant.
    allowed -= {"auth", "quit", "reset"}
    assert allowed == set().union(*(v for k, v in expected.items() if k != "*"))
    # Each allowed command on each of the agent's keys: only where the rules say.
    suffixes = [k for k in expected if k not in ("", "*")]
    key_of = {s: keys.prefix + s.replace("*", "t-1:1") for s in suffixes}
    args_of = {
        "xreadgroup": lambda k: ["xreadgroup", "group", "workers", "r1", "streams", k, ">"],
        "xinfo|consumers": lambda k: ["xinfo", "consumers", k, "workers"],
        "xpending": lambda k: ["xpending", k, "workers"],
        "xclaim": lambda k: ["xclaim", k, "workers", "r1", "0", "0-1"],
        "xrange": lambda k: ["xrange", k, "-", "+"],
        "xrevrange": lambda k: ["xrevrange", k, "+", "-"],
        "xadd": lambda k: ["xadd", k, "*", "f", "v"],
        "set": lambda k: ["set", k, "v"],
        "hset": lambda k: ["hset", k, "f", "v"],
        "pexpire": lambda k: ["pexpire", k, "1"],
        "xack": lambda k: ["xack", k, "workers", "0-1"],
        "xdel": lambda k: ["xdel", k, "0-1"],
        "hdel": lambda k: ["hdel", k, "f"],
        "hexists": lambda k: ["hexists", k, "f"],
    }
    for suffix in suffixes:
        for command in sorted(allowed - expected[""]):
            args = args_of.get(command, lambda k, c=command: [c, k])(key_of[suffix])
            verdict = await dry_run(admin, user, *args)
            assert (verdict == "OK") == (command in expected[suffix]), (command, suffix, verdict)
    # Functions: the agent's own, on its keys; never the operator's.
    [library] = await admin.function_list(library="podium")
    functions = {f[1].decode() for f in library[library.index(b"functions") + 1]}
    assert len(functions) == 12
    for name in sorted(functions):
        verb = "fcall_ro" if name in AGENT_READ_ONLY_FUNCTIONS else "fcall"
        verdict = await dry_run(admin, user, verb, name, "1", keys.inbox)
        assert (verdict == "OK") == (name in AGENT_FUNCTIONS or name in AGENT_READ_ONLY_FUNCTIONS), (name, verdict)
        other = await dry_run(admin, user, verb, name, "1", AgentKeys("acl-ns", "other").inbox)
        assert other != "OK"


async def test_an_agent_serving_a2a_may_queue_and_await_only_its_own_tasks(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await redis_io.ensure_acl_user(admin, "acl-ns", "plain", "pw-plain-123")
    await redis_io.ensure_acl_user(admin, "acl-ns", "front", "pw-front-123", a2a=True)
    own, other = AgentKeys("acl-ns", "front"), AgentKeys("acl-ns", "plain")
    front, plain = redis_username("acl-ns", "front"), redis_username("acl-ns", "plain")
    queue = ["fcall", "podium_dispatch", "1"]
    assert await dry_run(admin, front, *queue, own.inbox, "10", "t-1", "1", "{}") == "OK"
    assert await dry_run(admin, front, "xread", "streams", own.results, "0-0") == "OK"
    assert await dry_run(admin, front, "xrevrange", own.results, "+", "-") == "OK"
    # Not another agent's inbox or results, and an agent without spec.a2a may not queue work at all.
    assert await dry_run(admin, front, *queue, other.inbox, "10", "t-1", "1", "{}") != "OK"
    assert await dry_run(admin, front, "xread", "streams", other.results, "0-0") != "OK"
    assert await dry_run(admin, plain, *queue, other.inbox, "10", "t-1", "1", "{}") != "OK"
    assert await dry_run(admin, plain, "xread", "streams", other.results, "0-0") != "OK"
    assert allowed_commands(a2a=True)["*"] - allowed_commands()["*"] == {"fcall|podium_dispatch"}


async def test_agent_user_cannot_read_or_write_an_orchestration_of_the_same_name(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await redis_io.ensure_acl_user(admin, "acl-ns", "twin", "pw-twin-123")
    run = OrchestrationKeys("acl-ns", "twin")
    await admin.set(run.result("u-1"), '{"final": true}')
    own = await login(redis_server, "acl-ns", "twin", "pw-twin-123")
    try:
        for attempt in (own.get(run.result("u-1")), own.set(run.result("u-1"), "forged"), own.xrange(run.events)):
            with pytest.raises(NoPermissionError):
                await attempt
    finally:
        await own.aclose()
    assert await admin.get(run.result("u-1")) == b'{"final": true}'


async def test_reapplying_is_idempotent_and_rotates_password(redis_server: RedisServer, admin: aioredis.Redis) -> None:
    await redis_io.ensure_acl_user(admin, "acl-ns", "rot", "first-password")
    await redis_io.ensure_acl_user(admin, "acl-ns", "rot", "first-password")
    await (await login(redis_server, "acl-ns", "rot", "first-password")).aclose()
    await redis_io.ensure_acl_user(admin, "acl-ns", "rot", "second-password")
    with pytest.raises(AuthenticationError):
        await login(redis_server, "acl-ns", "rot", "first-password")


async def test_deleting_removes_user_and_keys(redis_server: RedisServer, admin: aioredis.Redis) -> None:
    await redis_io.ensure_acl_user(admin, "acl-ns", "gone", "pw-gone-123")
    keys = AgentKeys("acl-ns", "gone")
    await admin.hset(keys.heartbeats, "r1", "0.1 0 1 1000")
    assert await redis_io.delete_acl_user(admin, "acl-ns", "gone")
    assert not await redis_io.acl_user_exists(admin, "acl-ns", "gone")
    assert not await redis_io.delete_acl_user(admin, "acl-ns", "gone")
    assert await purge_agent(admin, "acl-ns", "gone") == 2  # the inbox (with its group) and the heartbeats
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
