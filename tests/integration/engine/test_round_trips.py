"""Redis round trips of the engine per step, counted on a real redis-server with in-process no-op agents on the real
bus: a pipeline step costs its dispatch and its result read (its result's writes ride the next step's dispatch, which
also carries the reads of the step after); a centralCommand run's parallel tasks share their reads, dispatches and
writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.orchestration import central_spec, echoes, pipeline_spec
from podium.api.orchestration import Limits
from podium.dataplane.bus import Bus
from podium.engine.context import RunOptions
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.journal import Journal
from podium.engine.runner import run_orchestration
from podium.engine.stats import StatsStore

AGENTS = [f"a{i}" for i in range(4)]
STAGES = 12
TASKS = 48
# Per run, whatever its size: the agents' loads and the budget's claim (sent together), the first step's reads
# (centralCommand: its agents' stats for the plan) with the run.started event, run.finished.
PER_RUN = 4


class Counting(aioredis.Connection):
    """A real connection counting what it sends: a command or a whole pipeline is one round trip; result reads
    (XREAD) apart, as their number depends on how the results happen to arrive."""

    sent = 0
    xreads = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks: Iterable[Any] = [command] if isinstance(command, (bytes, str, memoryview)) else command
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        cls = type(self)
        cls.sent += 1
        cls.xreads += b"\r\nXREAD\r\n" in packed[:64]
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted(redis_url: str) -> AsyncIterator[tuple[Bus, type[Counting], str]]:
    """The engine's Bus on a counted client (a class of its own, so counts never mix), the agents on their own."""
    counter = type("Counter", (Counting,), {"sent": 0, "xreads": 0})
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, connection_class=counter, max_connections=100)
    engine = aioredis.Redis(connection_pool=pool)
    bus = Bus(engine)
    namespace = "rt" + uuid.uuid4().hex[:8]
    async with echoes(redis_url, AGENTS, namespace):
        yield bus, counter, namespace
    await bus.close()
    await engine.aclose()


async def counted_run(bus: Bus, counter: type[Counting], namespace: str, spec: Any) -> tuple[int, int]:
    """(round trips other than result reads, result reads) of one run, which must succeed."""
    directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=16) for n in AGENTS])
    # A look taken ahead is used however long the machine stalls: the count must not depend on the load.
    options = RunOptions(look_ahead_seconds=3600)
    sent, xreads = counter.sent, counter.xreads
    uid = uuid.uuid4().hex[:12]
    outcome = await run_orchestration(bus.redis, directory, namespace, f"rt-{uid}", uid, spec, bus=bus, options=options)
    assert outcome.phase == "Succeeded", outcome.message
    return counter.sent - sent - (counter.xreads - xreads), counter.xreads - xreads


async def warm(bus: Bus, counter: type[Counting], namespace: str, spec: Any) -> None:
    """Result streams watched, the library read, and the pool holding a connection for each of the reads a run
    starts with at once besides the one its result reader keeps (a new connection's handshake would count)."""
    for _ in range(2):
        await counted_run(bus, counter, namespace, spec)


async def test_a_pipeline_step_takes_its_dispatch_and_its_result_read_its_writes_ride_the_next_dispatch(
    counted: tuple[Bus, type[Counting], str],
) -> None:
    bus, counter, namespace = counted
    await warm(bus, counter, namespace, pipeline_spec(STAGES))
    other, xreads = await counted_run(bus, counter, namespace, pipeline_spec(STAGES))
    # Per step: the dispatch, with its journal entry and count, the previous step's result writes and the next
    # step's reads; the last step's writes go on their own (no dispatch follows). The result read is at least one
    # more (another if the agent is slow to answer).
    assert other == STAGES + PER_RUN + 1
    assert xreads >= STAGES
    assert (other + STAGES) / STAGES <= 2 + (PER_RUN + 1) / STAGES


async def test_parallel_centralcommand_tasks_share_their_round_trips(counted: tuple[Bus, type[Counting], str]) -> None:
    bus, counter, namespace = counted
    await warm(bus, counter, namespace, central_spec(TASKS))
    other, xreads = await counted_run(bus, counter, namespace, central_spec(TASKS))
    # The tasks' reads go out in one round trip and their dispatches in another; results are written as they are
    # read, a round trip per batch of results, never one per task.
    assert other <= PER_RUN + 2 + xreads
    assert other + xreads <= TASKS  # the target is two per task; it takes a fraction of one


async def test_parallel_tasks_sharing_their_reads_still_cannot_pass_the_last_budget_slot(
    counted: tuple[Bus, type[Counting], str],
) -> None:
    bus, _, namespace = counted
    directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=16) for n in AGENTS])
    spec = central_spec(TASKS).model_copy(update={"limits": Limits(max_tasks=5)})
    uid = uuid.uuid4().hex[:12]
    outcome = await run_orchestration(bus.redis, directory, namespace, f"rt-{uid}", uid, spec, bus=bus)
    assert outcome.phase == "Failed" and outcome.reason == "BudgetExceeded"
    assert "maxTasks used 5 of 5" in outcome.message
    journal = await Journal(bus.redis, namespace, f"rt-{uid}", uid).entries()
    assert len(journal) == 5, "every task counted when admitted, before any dispatch went out"


async def test_writes_that_cannot_ride_a_dispatch_go_on_their_own_and_none_is_lost(
    counted: tuple[Bus, type[Counting], str],
) -> None:
    # The operator reads the Agents again before a dispatch (here before every one): the event loop turns between a
    # step's result and the next dispatch, so the result's writes cannot wait for it and are sent by themselves.
    bus, _, namespace = counted
    directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=16) for n in AGENTS])

    async def agents() -> AgentDirectory:
        await asyncio.sleep(0.005)
        return directory

    before = {n: s.completed for n, s in (await StatsStore(bus.redis, namespace).get_many(AGENTS)).items()}
    uid = uuid.uuid4().hex[:12]
    spec, options = pipeline_spec(STAGES), RunOptions(refresh_seconds=0, look_ahead_seconds=3600)
    outcome = await run_orchestration(
        bus.redis, directory, namespace, "rides", uid, spec, bus=bus, agents=agents, options=options
    )
    assert outcome.phase == "Succeeded", outcome.message
    journal = await Journal(bus.redis, namespace, "rides", uid).entries()
    assert [e.state for e in journal] == ["done"] * STAGES
    after = await StatsStore(bus.redis, namespace).get_many(AGENTS)
    assert sum(after[n].completed - before[n] for n in AGENTS) == STAGES
    events = await bus.history(orchestration=f"{namespace}/rides", limit=1000)
    assert len([e for e in events if e.type == "task.finished"]) == STAGES
