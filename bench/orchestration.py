"""Engine overhead: what RunContext adds per step on top of the bare bus, measured side by side.

Starts its own redis-server on loopback and runs in-process echo consumers on the real bus (agent work ~0), then:
- a pipeline of N no-op stages through run_orchestration (journal, budget, breaker, stats, selection, events),
- the same N steps sent directly through the bus (sequential dispatch + wait_result to the same echo agents),
- per-step overhead = engine ms/step - bus ms/step, and Redis round trips per step for each,
- centralCommand with T independent tasks, and a replay of a finished run from its journal.
Bounded: at most 64 tasks per run (the API cap), a few runs each.

    .venv/bin/python -m bench.orchestration [--quick] [--json] [--stages 20] [--tasks 64] [--agents 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.messages import Result, Task
from podium.dataplane.records import decode_entry
from podium.dataplane.wire import WireRedis, wire
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.runner import run_orchestration
from podium_localcluster.redis_server import RedisServer

NAMESPACE = "bench"


@dataclass
class Plan:
    stages: int  # pipeline length (sequential no-op steps)
    tasks: int  # centralCommand: independent tasks in one run
    agents: int  # echo agents
    runs: int  # repetitions of each measurement; medians are reported

    def check(self) -> None:
        if not 1 <= self.tasks <= 64 or not 1 <= self.stages <= 64:
            raise ValueError("tasks and stages must be within 1..64 (the API caps tasks per orchestration)")
        if self.agents < 1 or self.runs < 1:
            raise ValueError("agents and runs must be >= 1")


FULL = Plan(stages=20, tasks=64, agents=4, runs=7)
QUICK = Plan(stages=20, tasks=64, agents=4, runs=3)
SWARM_SIZES = (25, 50, 100)  # explorers; 5 generations each, time per generation by size
SWARM_GENERATIONS = 5


def answer(task: Task, agent: str) -> Any:
    """A no-op agent's answer, in the shape each task kind's contract asks for (swarm's explore and evaluate)."""
    if task.kind == "explore":
        return {"solution": f"{agent} {task.input.get('generation')}"}
    if task.kind == "evaluate":
        # Rising with the generation: the swarm improves every round, so it runs all its generations.
        generation = float(task.input.get("generation") or 1)
        return {"scores": [min(10, int(generation) + (i % 2)) for i in range(len(task.input["solutions"]))]}
    return {"by": agent}


async def echo(bus: Bus, agent: str, stop: asyncio.Event, *, namespace: str = NAMESPACE) -> None:
    """A no-op agent in this process: answers every task of its inbox at once, until ``stop``."""
    consumer = bus.consumer(namespace, agent, f"{agent}-0")
    while not stop.is_set():
        batch = await consumer.fetch(16, 100)
        if batch:
            now = time.time()
            await consumer.complete_many(
                [
                    (
                        d,
                        Result(
                            d.task.id,
                            d.task.attempt,
                            True,
                            output=answer(d.task, agent),
                            agent=agent,
                            replica="0",
                            finished_at=now,
                        ),
                    )
                    for d in batch
                ]
            )


@contextlib.asynccontextmanager
async def echoes(url: str, agents: Sequence[str], namespace: str = NAMESPACE) -> AsyncIterator[None]:
    """No-op agents answering ``agents``' inboxes (:func:`echo`) on a client of their own, until the block ends."""
    client = aioredis.Redis.from_url(url)
    bus, stop = Bus(client), asyncio.Event()
    loops = [asyncio.create_task(echo(bus, name, stop, namespace=namespace)) for name in agents]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*loops)
        await bus.close()
        await client.aclose()


class CountingConnection(wire(aioredis.Connection)):  # type: ignore[misc]
    """The product's wire (as connect() gives the operator), counting requests written (a pipeline is one): the
    round trips of the client that uses it."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


def counting_client(url: str) -> aioredis.Redis:
    # A blocking pool, as the operator's: a wide fan-out (a swarm of 100) waits for a connection, never fails.
    pool = aioredis.BlockingConnectionPool.from_url(url, connection_class=CountingConnection, max_connections=100)
    return WireRedis(connection_pool=pool)


def pipeline_spec(stages: int) -> OrchestrationSpec:
    return OrchestrationSpec.model_validate(
        {"strategy": "pipeline", "pipeline": {"stages": [{"name": f"s{i}", "role": "worker"} for i in range(stages)]}}
    )


def swarm_spec(generations: int) -> OrchestrationSpec:
    return OrchestrationSpec.model_validate(
        {
            "strategy": "swarm",
            "swarm": {"maxGenerations": generations, "evaluator": "judge", "convergence": {"threshold": 0}},
        }
    )


def central_spec(tasks: int) -> OrchestrationSpec:
    return OrchestrationSpec.model_validate(
        {"strategy": "centralCommand", "centralCommand": {"tasks": [{"name": f"t{i}"} for i in range(tasks)]}}
    )


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, int, Any]:
    """(seconds, round trips of the engine's client, work's value) of one run."""
    before = CountingConnection.sent
    started = time.perf_counter()
    value = await work()
    return time.perf_counter() - started, CountingConnection.sent - before, value


async def run(plan: Plan) -> dict[str, Any]:
    plan.check()
    with RedisServer() as server:
        # The engine (and the direct baseline) on a counted client; the echo agents on their own.
        redis, agents_redis = counting_client(server.url), connect(server.url)
        bus, agents_bus = Bus(redis), Bus(agents_redis)
        names = [f"a{i}" for i in range(plan.agents)]
        stop = asyncio.Event()
        loops = [asyncio.create_task(echo(agents_bus, n, stop)) for n in names]
        directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=16) for n in names])
        seq = 0

        async def engine(spec: OrchestrationSpec) -> Any:
            uid = uuid.uuid4().hex[:12]
            outcome = await run_orchestration(redis, directory, NAMESPACE, f"bench-{uid}", uid, spec, bus=bus)
            if outcome.phase != "Succeeded":
                raise RuntimeError(f"bench run ended {outcome.phase}: {outcome.message}")
            return uid

        async def direct_parallel(count: int) -> None:
            """The floor of centralCommand: the same number of tasks sent at once straight through the bus."""
            nonlocal seq
            tasks = []
            for i in range(count):
                seq += 1
                tasks.append(
                    Task(
                        id=f"par-{seq}",
                        kind="execute",
                        input={"task": i},
                        namespace=NAMESPACE,
                        agent=names[i % len(names)],
                    )
                )
            await bus.dispatch_many(tasks)
            got = await bus.wait_results(tasks, 30)
            if len(got) != count:
                raise TimeoutError(f"{count - len(got)} results missing")

        async def direct(steps: int) -> None:
            nonlocal seq
            for i in range(steps):
                seq += 1
                task = Task(
                    id=f"direct-{seq}",
                    kind="execute",
                    input={"step": i},
                    namespace=NAMESPACE,
                    agent=names[i % len(names)],
                )
                await bus.dispatch(task)
                if await bus.wait_result(task, 30) is None:
                    raise TimeoutError(f"no result for {task.id}")

        try:
            pipeline, central = pipeline_spec(plan.stages), central_spec(plan.tasks)
            await engine(pipeline)  # warm up: connections, scripts, result streams, imports
            await direct(plan.stages)
            eng, bus_only = [], []
            for _ in range(plan.runs):  # interleaved, so a load spike hits both sides alike
                eng.append(await timed(lambda: engine(pipeline)))
                bus_only.append(await timed(lambda: direct(plan.stages)))
            wide, wide_bus = [], []
            for _ in range(plan.runs):
                wide.append(await timed(lambda: engine(central)))
                wide_bus.append(await timed(lambda: direct_parallel(plan.tasks)))
            uid = wide[-1][2]
            replay = await timed(
                lambda: run_orchestration(redis, directory, NAMESPACE, f"bench-{uid}", uid, central, bus=bus),
            )
        finally:
            stop.set()
            await asyncio.gather(*loops)
            await bus.close()
            await agents_bus.close()
            await redis.aclose()
            await agents_redis.aclose()
    n = plan.stages
    engine_ms = statistics.median(t for t, _, _ in eng) * 1000 / n
    bus_ms = statistics.median(t for t, _, _ in bus_only) * 1000 / n
    wide_s = statistics.median(t for t, _, _ in wide)
    wide_bus_s = statistics.median(t for t, _, _ in wide_bus)
    return {
        "pipeline": {
            "stages": n,
            "engine_ms_per_step": round(engine_ms, 3),
            "bus_ms_per_step": round(bus_ms, 3),
            "overhead_ms_per_step": round(engine_ms - bus_ms, 3),
            "engine_round_trips_per_step": round(statistics.median(c for _, c, _ in eng) / n, 1),
            "bus_round_trips_per_step": round(statistics.median(c for _, c, _ in bus_only) / n, 1),
        },
        "central_command": {
            "tasks": plan.tasks,
            "seconds": round(wide_s, 4),
            "tasks_per_s": round(plan.tasks / wide_s, 1),
            "round_trips_per_task": round(statistics.median(c for _, c, _ in wide) / plan.tasks, 1),
            "bus_tasks_per_s": round(plan.tasks / wide_bus_s, 1),
            "bus_round_trips_per_task": round(statistics.median(c for _, c, _ in wide_bus) / plan.tasks, 2),
        },
        "replay": {"tasks": plan.tasks, "seconds": round(replay[0], 4), "round_trips": replay[1]},
        "swarm": await swarm(SWARM_SIZES, SWARM_GENERATIONS, 1 if plan.runs < 5 else 3),
        "plan": asdict(plan),
    }


async def swarm(sizes: tuple[int, ...], generations: int, runs: int) -> dict[str, Any]:
    """Time per generation of a swarm of N no-op explorers and one evaluator, N in ``sizes`` (median of ``runs``)."""
    largest = max(sizes)
    with RedisServer() as server:
        # One blocking fetch per in-process agent: their client needs a connection for each.
        redis, agents_redis = (
            counting_client(server.url),
            connect(server.url, max_connections=4 * largest),
        )
        bus, agents_bus = Bus(redis), Bus(agents_redis)
        explorers = [f"e{i:03d}" for i in range(largest)]
        stop = asyncio.Event()
        loops = [asyncio.create_task(echo(agents_bus, n, stop)) for n in [*explorers, "judge"]]
        rows = []
        try:
            for size in sizes:
                infos = [AgentInfo(name=n, role="explorer", concurrency=4) for n in explorers[:size]]
                directory = AgentDirectory([*infos, AgentInfo(name="judge", role="evaluator", concurrency=4)])
                spec = swarm_spec(generations)

                async def once(directory: AgentDirectory = directory, spec: OrchestrationSpec = spec) -> None:
                    uid = uuid.uuid4().hex[:12]
                    outcome = await run_orchestration(redis, directory, NAMESPACE, f"swarm-{uid}", uid, spec, bus=bus)
                    if outcome.phase != "Succeeded" or outcome.result["generations"] != generations:
                        raise RuntimeError(f"swarm run ended {outcome.phase}: {outcome.message}")

                await once()  # warm up: every explorer's result stream is watched from here on
                times = [await timed(once) for _ in range(runs)]
                seconds = statistics.median(t for t, _, _ in times)
                rows.append(
                    {
                        "explorers": size,
                        "ms_per_generation": round(seconds * 1000 / generations, 1),
                        "round_trips_per_task": round(
                            statistics.median(c for _, c, _ in times) / (generations * (size + 1)), 1
                        ),
                    }
                )
        finally:
            stop.set()
            await asyncio.gather(*loops)
            await bus.close()
            await agents_bus.close()
            await redis.aclose()
            await agents_redis.aclose()
    base = rows[0]
    for row in rows:  # growth of the time per generation against growth of the explorers: <= 1 is at most linear
        row["growth_vs_linear"] = round(
            (row["ms_per_generation"] / base["ms_per_generation"]) / (row["explorers"] / base["explorers"]), 2
        )
    return {"generations": generations, "rows": rows}


def table(report: dict[str, Any]) -> str:
    p, c, r = report["pipeline"], report["central_command"], report["replay"]
    return "\n".join(
        [
            f"pipeline of {p['stages']} no-op stages: engine {p['engine_ms_per_step']:.2f} ms/step "
            f"({p['engine_round_trips_per_step']} Redis round trips/step), bus directly {p['bus_ms_per_step']:.2f} "
            f"ms/step ({p['bus_round_trips_per_step']} round trips/step): "
            f"overhead {p['overhead_ms_per_step']:.2f} ms/step",
            f"centralCommand, {c['tasks']} parallel tasks: {c['seconds'] * 1000:.0f} ms = {c['tasks_per_s']:.0f} "
            f"tasks/s ({c['round_trips_per_task']} round trips/task); the same tasks at once through the bus "
            f"{c['bus_tasks_per_s']:.0f} tasks/s ({c['bus_round_trips_per_task']} round trips/task)",
            f"replay of that run from its journal: {r['seconds'] * 1000:.1f} ms ({r['round_trips']} round trips)",
            *(
                f"swarm, {w['explorers']} explorers, {report['swarm']['generations']} generations: "
                f"{w['ms_per_generation']:.0f} ms/generation ({w['round_trips_per_task']} round trips/task; growth "
                f"vs linear {w['growth_vs_linear']})"
                for w in report.get("swarm", {}).get("rows", [])
            ),
        ]
    )


# ---------------------------------------------------------------------------------------------- apply -> dispatch
# The operator's share of a run's start: `kubectl apply` of a pipeline to its first dispatch (the journal entry
# written just before the task goes on the bus), side by side with the same pipeline handed to the engine
# directly. Needs a running cluster, a `podium operator` watching `namespace`, and a Ready agent there.

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


def bench_pipeline(name: str, agent: str, stages: int) -> dict[str, Any]:
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Orchestration",
        "metadata": {"name": name},
        "spec": {
            "strategy": "pipeline",
            "input": {"text": "bench"},
            "pipeline": {"stages": [{"name": f"s{i}", "agent": agent, "retries": 0} for i in range(stages)]},
        },
    }


def _journal_times(redis_url: str, namespace: str, name: str, uid: str) -> list[float]:
    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        raw = client.hgetall(OrchestrationKeys(namespace, name).journal(uid))
    finally:
        client.close()
    return sorted(decode_entry(v).started_at for v in raw.values())


def apply_to_first_dispatch(
    kubectl: Kubectl, redis_url: str, namespace: str, agent: str, *, stages: int = 3, runs: int = 3, timeout: float = 60
) -> list[dict[str, float]]:
    """Per run: seconds from `kubectl apply` to the first dispatch and to Succeeded (wall clock, one host)."""
    import json

    out = []
    for i in range(runs):
        name = f"bench-apply-{uuid.uuid4().hex[:6]}-{i}"
        started = time.time()
        applied = kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bench_pipeline(name, agent, stages)))
        if applied.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {applied.stderr}")
        deadline = time.monotonic() + timeout
        while True:
            got = json.loads(kubectl("get", "-n", namespace, "orchestration", name, "-o", "json").stdout or "{}")
            if (got.get("status") or {}).get("phase") in ("Succeeded", "Failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        done = time.time()
        status = got.get("status") or {}
        if status.get("phase") != "Succeeded":
            raise RuntimeError(f"{name} did not succeed: {status.get('phase')} {status.get('message')}")
        dispatches = _journal_times(redis_url, namespace, name, got["metadata"]["uid"])
        out.append({"first_dispatch": dispatches[0] - started, "succeeded_seen": done - started})
        kubectl("delete", "-n", namespace, "orchestration", name, "--wait=false")
    return out


async def direct_first_dispatch(
    redis_url: str, namespace: str, directory: AgentDirectory, agent: str, *, stages: int = 3, runs: int = 3
) -> list[dict[str, float]]:
    """The same pipeline through run_orchestration in this process: start -> first dispatch and -> result."""
    spec = OrchestrationSpec.model_validate(bench_pipeline("x", agent, stages)["spec"])
    redis = aioredis.Redis.from_url(redis_url)
    out = []
    try:
        for i in range(runs):
            name, uid = f"bench-direct-{uuid.uuid4().hex[:6]}-{i}", uuid.uuid4().hex
            started = time.time()
            outcome = await run_orchestration(redis, directory, namespace, name, uid, spec)
            done = time.time()
            if outcome.phase != "Succeeded":
                raise RuntimeError(f"direct run failed: {outcome.message}")
            first = min(t.started_at or done for t in outcome.tasks)
            out.append({"first_dispatch": first - started, "succeeded_seen": done - started})
    finally:
        await redis.aclose()
    return out


def summary(label: str, rows: list[dict[str, float]]) -> str:
    first = statistics.median(r["first_dispatch"] for r in rows)
    total = statistics.median(r["succeeded_seen"] for r in rows)
    return f"{label}: apply/start -> first dispatch p50 {first * 1000:.0f} ms; -> Succeeded p50 {total * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--stages", type=int)
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--agents", type=int)
    parser.add_argument("--runs", type=int)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(**{k: getattr(args, k) if getattr(args, k) is not None else v for k, v in asdict(plan).items()})
    try:
        plan.check()
    except ValueError as exc:
        parser.error(str(exc))
    report = asyncio.run(run(plan))
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
