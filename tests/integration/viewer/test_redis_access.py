"""The viewer's Redis user, made exactly as the chart makes it on its built-in Redis (redis-server's `--user`
arguments from the rendered StatefulSet): it reads everything the viewer reads of a run, through the data plane's
own readers, and can change nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

from podium.dataplane.bus import Bus
from podium.dataplane.messages import Result, Task
from podium.dataplane.runs import load_result, result_key, store_result
from podium.dataplane.state import SharedState
from podium.engine.journal import DONE, Entry, Journal
from podium.viewer.source import run_results
from podium_localcluster.redis_server import RedisServer
from tests.support.chart import helm_is_built, one, render

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)

VIEWER = uuid.uuid4().hex
NS, NAME, UID = "team-a", "review", "u-1"


def chart_user_args() -> list[str]:
    """The viewer's `--user ...` arguments of the chart's redis-server, its password filled in as the pod would."""
    docs = render("viewer.enabled=true")
    args: list[str] = one(docs, "StatefulSet", "podium-redis")["spec"]["template"]["spec"]["containers"][0]["args"]
    user = args[args.index("--user") :]
    return [a.replace("$(VIEWER_REDIS_PASSWORD)", VIEWER) for a in user]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    # The default user keeps no password here (RedisServer's readiness check pings without one).
    with RedisServer(extra_args=chart_user_args()) as s:
        yield s


@pytest.fixture
async def admin(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=server.host, port=server.port)
    yield client
    await client.aclose()


@pytest.fixture
async def viewer(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=server.host, port=server.port, username="podium-viewer", password=VIEWER)
    yield client
    await client.aclose()


async def test_the_viewer_user_reads_a_runs_journal_events_results_state_and_stored_result(
    admin: aioredis.Redis, viewer: aioredis.Redis
) -> None:
    # What a run leaves behind, written by the parts that write it.
    task = Task(id=f"{UID}:stage-lint:1", kind="execute", input={}, namespace=NS, agent="reviewer",
                orchestration=f"{NS}/{NAME}", attempt=1)  # fmt: skip
    result = Result(task.id, 1, True, output={"ok": 1}, agent="reviewer", replica="reviewer-0", cost=0.5)
    async with Bus(admin) as bus:
        await bus.dispatch(task)
        consumer = bus.consumer(NS, "reviewer", "reviewer-0")
        (delivery,) = await consumer.fetch(1, 0)
        assert await consumer.complete(delivery, result)
        await bus.publish(f"{NS}/{NAME}", "run.started", {"uid": UID}, "engine")
    await Journal(admin, NS, NAME, UID).put(
        Entry("stage-lint", DONE, task.id, "reviewer", 1, "execute", ok=True, result=result.to_dict())
    )
    await SharedState(admin, NS, NAME).set("notes", {"n": 1}, writer="engine")
    key = result_key(NS, NAME, UID)
    await store_result(admin, key, '{"big": true}')

    # Everything the viewer's source reads, as the viewer's user.
    async with Bus(viewer) as bus:
        assert [e.type for e in await bus.history(orchestration=f"{NS}/{NAME}")] == ["run.started"]
        said = await bus.history(agent=(NS, "reviewer"))
        assert [r.task_id for r in run_results(said, UID)] == [task.id]
    assert [e.step for e in await Journal(viewer, NS, NAME, UID).entries()] == ["stage-lint"]
    assert await SharedState(viewer, NS, NAME).get_all() == {"notes": {"n": 1}}
    assert await load_result(viewer, f"redis:{key}") == {"big": True}


async def test_the_viewer_user_can_change_nothing_and_read_nothing_but_podiums_keys(
    admin: aioredis.Redis, viewer: aioredis.Redis
) -> None:
    await admin.set("podium:{team-a/review}:probe", "1")
    await admin.set("someone-elses-key", "secret")
    assert await viewer.get("podium:{team-a/review}:probe") == b"1"
    for write in (
        viewer.set("podium:{team-a/review}:probe", "2"),
        viewer.hset("podium:{team-a/review}:journal:u-1", "x", "y"),
        viewer.xadd("podium:{team-a/review}:events", {"type": "forged"}),
        viewer.delete("podium:{team-a/review}:probe"),
        viewer.eval("return redis.call('SET', KEYS[1], 'x')", 1, "podium:{team-a/review}:probe"),
        viewer.flushall(),
        viewer.execute_command("ACL", "SETUSER", "podium-viewer", "+@all"),
        viewer.keys("*"),
        viewer.get("someone-elses-key"),
    ):
        with pytest.raises((NoPermissionError, ResponseError), match=r"NOPERM|permission"):
            await write
    assert await admin.get("podium:{team-a/review}:probe") == b"1"
