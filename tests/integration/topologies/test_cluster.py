"""Podium on a Redis Cluster of three primaries (127.0.0.1 ports, started by the fixture): the bus through redis-py's
cluster client (pipelines and functions, one hash tag per call), agent users on every node, and a whole
orchestration run by the engine with real `podium agent` replicas logged in as their own users."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from redis.exceptions import NoPermissionError

from bench.orchestration import central_spec, echo, pipeline_spec
from podium.api.orchestration import Limits, OrchestrationSpec
from podium.dataplane import provision, topology
from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.keys import AgentKeys, OrchestrationKeys
from podium.dataplane.library import loaded_code
from podium.dataplane.messages import Result, Task
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.journal import Journal
from podium.engine.runner import run_orchestration
from podium.operator.orchestrations.directory import Snapshot, build
from tests.support.agent_processes import AgentFleet
from tests.support.redis_topologies import RedisClusterSet

ROOT = Path(__file__).resolve().parents[3]
# The deterministic demo agents: a run of them needs no model server.
DETERMINISTIC = ROOT / "tests" / "data" / "deterministic"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterSet]:
    with RedisClusterSet(3) as running:
        yield running


@pytest.fixture
async def client(cluster: RedisClusterSet) -> AsyncIterator[aioredis.Redis]:
    c = connect(cluster.url)
    yield c
    await c.aclose()


def agents_on_every_node(client: Any, ns: str, count: int) -> list[str]:
    """Agent names whose tags land on every primary (so the test crosses slots and nodes)."""
    names, nodes = [], set()
    for i in range(500):
        name = f"a{i}"
        node = client.get_node_from_key(AgentKeys(ns, name).inbox).name
        if node not in nodes or len(names) < count:
            names.append(name)
            nodes.add(node)
        if len(names) >= count and len(nodes) == 3:
            return names
    raise AssertionError("no spread of agents over the three primaries")


async def test_the_bus_runs_on_three_primaries(client: Any) -> None:
    ns = "c" + uuid.uuid4().hex[:8]
    await topology.ready(client)
    agents = agents_on_every_node(client, ns, 6)
    async with Bus(client) as bus:
        tasks = [Task(id=f"t{i}", kind="execute", input=i, namespace=ns, agent=agents[i % 6]) for i in range(120)]
        await bus.dispatch_many(tasks)  # one pipeline, one function call per agent, across the three nodes
        # The library is on every primary, with one seal secret.
        codes = {await loaded_code(client, node) for node in topology.primaries(client)}
        assert len(codes) == 1 and None not in codes

        async def serve(agent: str) -> None:
            consumer = bus.consumer(ns, agent, f"{agent}-0", lease_seconds=1)
            while True:
                batch = await consumer.fetch(8, 100)
                await consumer.complete_many([(d, Result(d.task.id, 1, True, output=d.task.input * 2)) for d in batch])

        workers = [asyncio.create_task(serve(a)) for a in agents]
        try:
            results = await bus.wait_results(tasks, 30)  # one result reader per agent: one slot per XREAD
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        assert {t: r.output for t, r in results.items()} == {t.id: t.input * 2 for t in tasks}
        assert [r.replica for r in await bus.replicas(ns, agents[0])] == [f"{agents[0]}-0"]
        for agent in agents:
            assert await bus.queue_depth(ns, agent) == 0

        # Events of an orchestration, cancelling, and a dead letter, on the cluster too.
        orch = f"{ns}/o1"
        await bus.publish(orch, "note", {"x": 1}, sender="engine")
        assert [e.type for e in await bus.history(orchestration=orch)] == ["note"]
        queued = Task(id="late", kind="execute", input=0, namespace=ns, agent=agents[1], orchestration=orch)
        await bus.dispatch(queued)
        assert await bus.cancel(orch, [agents[1]]) == {agents[1]: 1}
        await client.xadd(AgentKeys(ns, agents[2]).inbox, {"t": b"{broken"})
        consumer = bus.consumer(ns, agents[2], "r9")
        assert await consumer.fetch(4, 100) == []
        [letter] = await bus.dead_letters(ns, agents[2])
        assert "not valid JSON" in letter.reason


async def test_the_engine_folds_its_writes_on_the_cluster_too(client: Any) -> None:
    """A run's keys and its agents' keys are on different nodes: the journal entry goes in a round trip before the
    dispatch (a Cluster's pipeline orders nothing across nodes), and parallel steps' combined reads and writes
    reach every node."""
    ns = "c" + uuid.uuid4().hex[:8]
    await topology.ready(client)
    agents = agents_on_every_node(client, ns, 6)
    directory = AgentDirectory([AgentInfo(name=a, role="worker", concurrency=16) for a in agents])
    stop = asyncio.Event()
    async with Bus(client) as bus:
        loops = [asyncio.create_task(echo(bus, a, stop, namespace=ns)) for a in agents]
        try:
            for name, spec, phase in [
                ("p", pipeline_spec(6), "Succeeded"),
                ("c", central_spec(30), "Succeeded"),
                ("b", central_spec(20).model_copy(update={"limits": Limits(max_tasks=4)}), "Failed"),
            ]:
                outcome = await run_orchestration(client, directory, ns, name, f"uid-{name}", spec, bus=bus)
                assert outcome.phase == phase, outcome.message
                entries = await Journal(client, ns, name, f"uid-{name}").entries()
                assert len(entries) == {"p": 6, "c": 30, "b": 4}[name]
                assert all(e.state == "done" and e.ok for e in entries)
                again = await run_orchestration(client, directory, ns, name, f"uid-{name}", spec, bus=bus)
                # Replayed from the journal: the same outputs (centralCommand plans its assignments afresh).
                assert again.phase == phase and again.reason == outcome.reason
                if phase == "Succeeded":
                    assert (again.result or {}).get("results", again.result) == (outcome.result or {}).get(
                        "results", outcome.result
                    )
        finally:
            stop.set()
            await asyncio.gather(*loops)


async def test_agent_users_exist_on_every_node_and_reach_only_their_keys(cluster: RedisClusterSet, client: Any) -> None:
    ns = "c" + uuid.uuid4().hex[:8]
    await provision.ensure_agent(client, ns, "solo", "agent-solo", "pw-solo-123")
    for node in client.get_nodes():
        assert await client.execute_command("ACL", "GETUSER", "agent-solo", target_nodes=node) is not None
    own = connect(cluster.url, username="agent-solo", password="pw-solo-123")
    try:
        async with Bus(client) as producer, Bus(own) as agent_bus:
            task = Task(id="t1", kind="execute", input=3, namespace=ns, agent="solo")
            await producer.dispatch(task)
            consumer = agent_bus.consumer(ns, "solo", "solo-0")
            [delivery] = await consumer.fetch(1, 1000)
            assert await consumer.complete(delivery, Result("t1", 1, True, output=9))
            assert (await producer.wait_result(task, 5)).output == 9  # type: ignore[union-attr]
            with pytest.raises(NoPermissionError):
                await own.get(OrchestrationKeys(ns, "solo").events)
    finally:
        await own.aclose()


def example_objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    agents = [d for d in yaml.safe_load_all((DETERMINISTIC / "agents.yaml").read_text()) if d]
    teams = [d for d in yaml.safe_load_all((DETERMINISTIC / "teams.yaml").read_text()) if d]
    return agents, teams


def primaries(client: Any, ns: str, run: str, agents: list[str]) -> set[str]:
    """The primaries that hold the run's keys and its agents' (each in its own slot)."""
    slots = {client.keyslot(OrchestrationKeys(ns, run).budget)}
    slots |= {client.keyslot(AgentKeys(ns, a).inbox) for a in agents}
    return {client.nodes_manager.get_node_from_slot(s).name for s in slots}


async def test_a_whole_orchestration_runs_on_the_cluster(cluster: RedisClusterSet, client: Any, tmp_path: Path) -> None:
    agents, teams = example_objects()
    research = [a for a in agents if (a["metadata"].get("labels") or {}).get("team") == "research"]
    names = [a["metadata"]["name"] for a in research]
    await client.initialize()  # the slot map
    # A namespace whose keys several primaries serve (a random one puts them all on one about 1 time in 27).
    ns = next(
        n
        for n in (f"c{uuid.uuid4().hex[:8]}" for _ in range(100))
        if len(primaries(client, n, "market-study", names)) >= 2
    )
    fleets = []
    try:
        for agent in research:
            name = agent["metadata"]["name"]
            password = f"pw-{name}-{uuid.uuid4().hex[:6]}"
            await provision.ensure_agent(client, ns, name, f"agent-{ns}-{name}", password)
            fleet = AgentFleet(
                cluster.url,
                ns,
                name,
                tmp_path,
                spec=agent["spec"],
                env={"PODIUM_REDIS_USERNAME": f"agent-{ns}-{name}", "PODIUM_REDIS_PASSWORD": password},
            )
            fleet.start(f"{name}-0", wait=False)
            fleets.append(fleet)
        for fleet in fleets:
            await asyncio.to_thread(fleet.wait_ready, f"{fleet.agent}-0")
        for agent in research:
            agent["status"] = {"readyReplicas": 1}
        directory = build(Snapshot(research, teams))
        example = yaml.safe_load((DETERMINISTIC / "hierarchical.yaml").read_text())
        spec = OrchestrationSpec.model_validate(example["spec"])
        outcome = await run_orchestration(client, directory, ns, "market-study", "uid-1", spec)
        assert outcome.phase == "Succeeded", outcome.message
        assert outcome.result and len(outcome.tasks) >= 4
        assert all(t.state == "Succeeded" for t in outcome.tasks)
    finally:
        for fleet in fleets:
            fleet.stop_all()
