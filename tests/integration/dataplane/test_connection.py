"""Clients from podium.dataplane.connection.connect(): same bytes on the wire as redis-py, against a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

import podium.dataplane.wire
from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.messages import Result, Task
from podium.dataplane.purge import purge_agent
from podium.dataplane.wire import wire
from podium_localcluster.redis_server import RedisServer

args_strategy = st.lists(st.text() | st.binary() | st.integers() | st.floats(allow_nan=False), min_size=1, max_size=8)


commands_strategy = st.lists(
    st.tuples(st.sampled_from(["SET", "EVALSHA", "CONFIG GET", b"SCRIPT LOAD"]), args_strategy), min_size=1, max_size=4
)


@given(commands=commands_strategy)
def test_commands_pack_to_the_same_bytes_as_redis_py(commands: list[tuple[Any, list[Any]]]) -> None:
    plain, fast = Connection(), wire(Connection)()
    for command, args in commands:
        assert b"".join(fast.pack_command(command, *args)) == b"".join(plain.pack_command(command, *args))
    # A pipeline's commands, as one write.
    pipeline = [[command, *args] for command, args in commands]
    assert b"".join(fast.pack_commands(pipeline)) == b"".join(plain.pack_commands(pipeline))


@pytest.mark.parametrize("checked", [False, True])  # True: as with an older hiredis that would pack bools
@pytest.mark.parametrize("bad", [None, True, False, object()])
def test_values_redis_py_refuses_are_still_refused(bad: Any, checked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podium.dataplane.wire, "_UNCHECKED", not checked)
    with pytest.raises(DataError):
        wire(Connection)().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        wire(Connection)().pack_commands([("PING",), ("SET", "k", bad)])


async def test_a_connected_client_round_trips_values_scripts_and_pipelines(redis_url: str) -> None:
    client = connect(redis_url)
    try:
        key = f"conn-test:{uuid.uuid4().hex}"
        await client.set(key, "é☃ \r\n$3")
        assert await client.get(key) == "é☃ \r\n$3".encode()
        assert await client.eval("return ARGV[1] .. ARGV[2]", 0, 1.5, b"\xff") == b"1.5\xff"
        async with client.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(key + ":n", 0.25)
            pipe.incr(key + ":i", 3)
            pipe.get(key + ":i")
            assert await pipe.execute() == [0.25, 3, b"3"]
        assert "maxmemory-policy" in str(await client.execute_command("CONFIG GET", "maxmemory-policy"))
        assert client.connection_pool.connection_class is wire(Connection)
        await client.delete(key, key + ":n", key + ":i")
    finally:
        await client.aclose()


async def test_a_client_with_another_encoding_keeps_it(redis_url: str) -> None:
    # hiredis only writes UTF-8: a latin-1 client must fall back to redis-py's packer, not corrupt values.
    client = connect(redis_url, encoding="latin-1")
    try:
        key = f"conn-test:{uuid.uuid4().hex}"
        await client.set(key, "é")
        assert await client.get(key) == b"\xe9"
        await client.delete(key)
    finally:
        await client.aclose()


async def test_a_bus_task_round_trips_through_hiredis_packed_clients(redis_url: str) -> None:
    producer, worker = connect(redis_url), connect(redis_url, pool_class=aioredis.BlockingConnectionPool)
    bus, worker_bus = Bus(producer), Bus(worker)
    ns = f"conn-{uuid.uuid4().hex[:8]}"
    try:
        tasks = [Task(id=f"t{i}", kind="execute", input={"i": i, "s": "é"}, namespace=ns, agent="a") for i in range(50)]
        await bus.dispatch_many(tasks)
        consumer = worker_bus.consumer(ns, "a", "r1")
        batch = await consumer.fetch(100, 1000)
        assert [d.task for d in batch] == tasks
        done = [(d, Result(task_id=d.task.id, attempt=1, ok=True, output=d.task.input)) for d in batch]
        assert await consumer.complete_many(done) == [True] * 50
        got = await bus.wait_results(tasks, 5)
        assert {tid: r.output for tid, r in got.items()} == {t.id: t.input for t in tasks}
        await purge_agent(bus.redis, ns, "a")
    finally:
        await bus.close()
        await worker_bus.close()
        await producer.aclose()
        await worker.aclose()


async def test_a_server_that_stops_answering_fails_the_call_after_socket_timeout(fresh_redis: RedisServer) -> None:
    # The wire bounds each wait for the socket instead of each reply: a stopped server must still fail a
    # command, and a pipeline, with redis-py's TimeoutError after socket_timeout, and the client recover after.
    client = connect(fresh_redis.url, socket_timeout=0.5)
    assert fresh_redis.process is not None
    try:
        await client.set("k", "v")
        os.kill(fresh_redis.process.pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(5):  # two bounded waits, not a hang
                with pytest.raises(RedisTimeoutError):
                    await client.get("k")
                with pytest.raises(RedisTimeoutError):
                    async with client.pipeline(transaction=False) as pipe:
                        await pipe.get("k").incr("n").execute()
        finally:
            os.kill(fresh_redis.process.pid, signal.SIGCONT)
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


async def test_replies_larger_than_one_socket_read_arrive_whole(redis_url: str) -> None:
    client = connect(redis_url, socket_timeout=5)
    key = f"conn-test:{uuid.uuid4().hex}"
    big = os.urandom(300_000)  # several 64 KiB socket reads per reply
    try:
        await client.set(key, big)
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(8):
                pipe.get(key)
            pipe.strlen(key)
            assert await pipe.execute() == [big] * 8 + [len(big)]
        with pytest.raises(ResponseError):  # an error reply still raises, and leaves the connection usable
            await client.incr(key)
        assert await client.strlen(key) == len(big)
    finally:
        await client.delete(key)
        await client.aclose()


async def test_a_callers_own_read_timeout_keeps_redis_py_meaning(redis_url: str) -> None:
    # pubsub's get_message(timeout=...) passes its own timeout: nothing there means None, not an error.
    client = connect(redis_url, socket_timeout=5)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(f"conn-test:{uuid.uuid4().hex}")
        assert (await pubsub.get_message(timeout=1))["type"] == "subscribe"
        started = time.monotonic()
        assert await pubsub.get_message(timeout=0.2) is None
        assert time.monotonic() - started < 2
    finally:
        await pubsub.aclose()
        await client.aclose()


def _pipeline_of_everything(pipe: Any, key: str) -> None:
    """Commands whose replies redis-py shapes with a callback, an error among them, and plain ones."""
    pipe.set(key, "v", nx=True).set(key, "w", nx=True).get(key)
    pipe.hset(key + ":h", mapping={"a": "1", "b": "2"}).hgetall(key + ":h").hmget(key + ":h", ["a", "zz"])
    pipe.incrbyfloat(key + ":f", 0.5).incr(key)  # an error reply: the value is not an integer
    pipe.xadd(key + ":s", {"f": "x"}, id="1-1").xrange(key + ":s").xinfo_stream(key + ":s")
    pipe.zadd(key + ":z", {"m": 2.5}).zrange(key + ":z", 0, -1, withscores=True)
    pipe.eval("return {1, 'two', {3}}", 0).exists(key, key + ":none").ttl(key).delete(key + ":none")


async def test_a_pipeline_returns_and_raises_what_redis_py_s_own_does(redis_url: str) -> None:
    # connect()'s pipelines read their replies straight from hiredis: each reply, callback and error must be
    # what redis-py's own pipeline gives for the same commands.
    ours, theirs = connect(redis_url), aioredis.Redis.from_url(redis_url)
    assert type(ours.pipeline()) is podium.dataplane.wire.WirePipeline
    try:
        got = []
        for client in (ours, theirs):
            key = f"conn-test:{uuid.uuid4().hex}"
            async with client.pipeline(transaction=False) as pipe:
                _pipeline_of_everything(pipe, key)
                replies = await pipe.execute(raise_on_error=False)
            async with client.pipeline(transaction=False) as pipe:
                _pipeline_of_everything(pipe, key)
                with pytest.raises(ResponseError) as raised:
                    await pipe.execute()
            assert await client.get(key) == b"v"  # the connection is still in step after an error reply
            text = str(raised.value).replace(key, "KEY")
            info = replies[10]
            got.append(([r if not isinstance(r, Exception) else repr(r) for r in replies[:10]], text, replies[11:]))
            assert info["length"] == 1 and info["first-entry"][1] == {b"f": b"x"}
            await client.delete(key, key + ":h", key + ":f", key + ":s", key + ":z")
        assert got[0] == got[1]
        assert got[0][0][2:] == [
            b"v",
            2,
            {b"a": b"1", b"b": b"2"},
            [b"1", None],
            0.5,
            got[0][0][7],
            b"1-1",
            [(b"1-1", {b"f": b"x"})],
        ]
        assert "Command # 8 (INCRBY KEY 1) of pipeline caused error" in got[0][1] and "not an integer" in got[0][1]
    finally:
        await ours.aclose()
        await theirs.aclose()


async def test_push_messages_ahead_of_a_pipeline_s_replies_are_not_taken_for_them(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RESP3 (redis-py's default) lets the server push messages between replies: client-side caching's
    # invalidations here. They must go to redis-py's push handling, not be returned as a command's reply.
    parser_class = podium.dataplane.wire._BoundedHiredisParser
    pushed: list[Any] = []

    async def handle(self: Any, response: Any) -> Any:
        pushed.append(response)
        return await original(self, response)

    original = parser_class.handle_push_response
    monkeypatch.setattr(parser_class, "handle_push_response", handle)
    # One connection, so the tracking it turns on is the pipelines'. The pipeline's own SET invalidates the key its
    # GET just read: the push lands between the pipeline's replies, never on the idle connection (which redis-py's
    # pool, from 8.2, drains and reconnects before handing it out).
    client = connect(redis_url, pool_class=aioredis.BlockingConnectionPool, max_connections=1)
    key = f"conn-test:{uuid.uuid4().hex}"
    try:
        await client.execute_command("CLIENT", "TRACKING", "ON")
        for n in range(3):
            async with client.pipeline(transaction=False) as pipe:
                replies = await pipe.get(key).set(key, n).get(key).strlen(key).execute()
            assert replies == [None if n == 0 else str(n - 1).encode(), True, str(n).encode(), 1]
        assert len(pushed) >= 2 and all(bytes(message[0]) == b"invalidate" for message in pushed)
    finally:
        await client.execute_command("CLIENT", "TRACKING", "OFF")
        await client.delete(key)
        await client.aclose()


async def test_a_pipeline_cancelled_while_it_waits_leaves_no_reply_for_the_next_call(
    fresh_redis: RedisServer,
) -> None:
    client = connect(fresh_redis.url, socket_timeout=5, max_connections=1)
    assert fresh_redis.process is not None
    try:
        await client.set("k", "v")
        os.kill(fresh_redis.process.pid, signal.SIGSTOP)
        try:
            pipe = client.pipeline(transaction=False).incr("n").get("n")
            call = asyncio.create_task(pipe.execute())
            await asyncio.sleep(0.2)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        finally:
            os.kill(fresh_redis.process.pid, signal.SIGCONT)
        # The only connection was dropped with the replies still owed on it: the next call reads its own.
        assert await client.get("k") == b"v"
        async with client.pipeline(transaction=False) as again:
            assert await again.get("k").get("n").execute() == [b"v", b"1"]
    finally:
        await client.aclose()
