"""A pipeline step's CPU work counted in instructions: the engine against the same steps sent directly through the bus.

Wall-clock A/B runs of the pipeline benchmark move by 10% between runs on a shared machine, more than most single
changes to the engine are worth. Valgrind's cachegrind counts the instructions a process runs, which repeats to about
0.1%: this runs the engine's loop (or the direct one) alone in a process under cachegrind, the echo agents in another
process outside it, once with ``--runs`` runs of a 20-stage pipeline and once with none (both after two warm-up
runs), and reports the difference per step. A measuring tool for changes to the engine's hot path, not part of
`make bench` (it needs valgrind; under it a run is about 50 times slower).

    .venv/bin/python -m bench.instructions [--runs 20] [--only engine,direct]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import uuid

from bench.orchestration import NAMESPACE, counting_client, echo, pipeline_spec
from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.messages import Task
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.runner import run_orchestration
from podium_localcluster.redis_server import RedisServer

STAGES = 20
AGENTS = [f"a{i}" for i in range(4)]
WARM_UP = 2
LOOPS = ("engine", "direct")


async def agents(url: str) -> None:
    bus, stop = Bus(connect(url)), asyncio.Event()
    await asyncio.gather(*(echo(bus, name, stop) for name in AGENTS))


async def loop(kind: str, url: str, runs: int) -> None:
    """``runs`` pipelines of STAGES no-op steps through the engine, or the same steps sent directly."""
    redis = counting_client(url)
    bus = Bus(redis)
    directory = AgentDirectory([AgentInfo(name=n, role="worker", concurrency=16) for n in AGENTS])
    spec, prefix, seq = pipeline_spec(STAGES), uuid.uuid4().hex[:6], 0

    async def engine() -> None:
        uid = uuid.uuid4().hex[:12]
        outcome = await run_orchestration(redis, directory, NAMESPACE, f"bench-{uid}", uid, spec, bus=bus)
        if outcome.phase != "Succeeded":
            raise RuntimeError(f"bench run ended {outcome.phase}: {outcome.message}")

    async def direct() -> None:
        nonlocal seq
        for i in range(STAGES):
            seq += 1
            task = Task(
                id=f"d-{prefix}-{seq}", kind="execute", input={"step": i}, namespace=NAMESPACE, agent=AGENTS[i % 4]
            )
            await bus.dispatch(task)
            if await bus.wait_result(task, 30) is None:
                raise TimeoutError(f"no result for {task.id}")

    one = engine if kind == "engine" else direct
    for _ in range(WARM_UP + runs):
        await one()
    await bus.close()
    await redis.aclose()


def counted(kind: str, url: str, runs: int) -> int:
    """Instructions of one process running ``loop(kind, url, runs)`` under cachegrind."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}  # compiled once, not in every counted run
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--loop",
        kind,
        "--url",
        url,
        "--runs",
        str(runs),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description="A pipeline step's CPU work counted in instructions (cachegrind).")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", default=",".join(LOOPS))
    parser.add_argument("--loop", choices=LOOPS, help=argparse.SUPPRESS)  # the counted process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        asyncio.run(loop(args.loop, args.url, args.runs))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with RedisServer() as server:
        echoes = subprocess.Popen(
            [sys.executable, "-c", f"import asyncio, bench.instructions as b; asyncio.run(b.agents({server.url!r}))"]
        )
        try:
            counted(LOOPS[1], server.url, 0)  # writes the byte code the counted runs then read
            per_step = {}
            for kind in args.only.split(","):
                busy, idle = counted(kind, server.url, args.runs), counted(kind, server.url, 0)
                per_step[kind] = (busy - idle) / (args.runs * STAGES)
                print(f"{kind}: {per_step[kind] / 1e6:.3f}M instructions a step", flush=True)
            if len(per_step) == 2:
                print(f"engine / direct: {per_step['engine'] / per_step['direct']:.2f}")
        finally:
            echoes.terminate()
            echoes.wait(10)


if __name__ == "__main__":
    main()
