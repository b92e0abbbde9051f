"""Engine overhead: how fast RunContext pushes tasks through the real bus to trivial agents.

Starts its own redis-server on loopback, runs in-process echo consumers on the real bus (so agent work is ~0
and what is measured is the engine: journal, budget, breaker, stats, selection, dispatch, result), then runs
centralCommand with N independent tasks and a pipeline of M stages. Bounded: at most 64 tasks per run (the API cap).

    .venv/bin/python -m bench.orchestration --tasks 64 --agents 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from podium.api.orchestration import OrchestrationSpec
from podium.engine.bus import Bus
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.messages import Result
from podium.engine.runner import run_orchestration
from podium.localcluster.redis_server import RedisServer

NAMESPACE = "bench"


async def echo(bus: Bus, agent: str, stop: asyncio.Event) -> None:
    consumer = bus.consumer(NAMESPACE, agent, f"{agent}-0")
    while not stop.is_set():
        for d in await consumer.fetch(16, 100):
            result = Result(d.task.id, d.task.attempt, True, output={"by": agent}, agent=agent, replica="0")
            await consumer.complete(d, result)


async def main(tasks: int, agents: int, stages: int) -> None:
    with RedisServer() as server:
        redis = aioredis.Redis.from_url(server.url)
        bus = Bus(redis)
        names = [f"a{i}" for i in range(agents)]
        stop = asyncio.Event()
        loops = [asyncio.create_task(echo(bus, n, stop)) for n in names]
        directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=16) for n in names])
        try:
            for label, spec in (
                (
                    f"centralCommand, {tasks} parallel tasks",
                    {
                        "strategy": "centralCommand",
                        "centralCommand": {"tasks": [{"name": f"t{i}"} for i in range(tasks)]},
                    },
                ),
                (
                    f"pipeline, {stages} sequential stages",
                    {
                        "strategy": "pipeline",
                        "pipeline": {"stages": [{"name": f"s{i}", "role": "worker"} for i in range(stages)]},
                    },
                ),
            ):
                parsed = OrchestrationSpec.model_validate(spec)
                uid = uuid.uuid4().hex[:12]
                started = time.perf_counter()
                outcome = await run_orchestration(redis, directory, NAMESPACE, "bench", uid, parsed, bus=bus)
                first = time.perf_counter() - started
                started = time.perf_counter()
                await run_orchestration(redis, directory, NAMESPACE, "bench", uid, parsed, bus=bus)
                replay = time.perf_counter() - started
                n = len(outcome.tasks)
                spans = [(t.finished_at or 0) - (t.started_at or 0) for t in outcome.tasks]
                print(
                    f"{label}: {outcome.phase}, {n} tasks in {first:.2f}s = {n / first:.0f} tasks/s; "
                    f"task p50 {statistics.median(spans) * 1000:.1f} ms; replay from journal {replay:.2f}s"
                )
        finally:
            stop.set()
            await asyncio.gather(*loops)
            await bus.close()
            await redis.aclose()


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
    import json

    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        raw = client.hgetall(f"podium:{{{namespace}/{name}}}:journal:{uid}")
    finally:
        client.close()
    return sorted(float(json.loads(v)["started_at"]) for v in raw.values())


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--stages", type=int, default=20)
    args = parser.parse_args()
    if not 1 <= args.tasks <= 64 or not 1 <= args.stages <= 64:
        parser.error("--tasks and --stages must be within 1..64 (the API caps tasks per orchestration)")
    asyncio.run(main(args.tasks, args.agents, args.stages))
