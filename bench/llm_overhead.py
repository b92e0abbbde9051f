"""Podium's overhead per LLM task: the same chat request through Podium and straight to the same llama-server.

    python -m bench.llm_overhead [--quick] [--json]      (in `make bench` as `--only llm_overhead`)

Starts its own llama-server (SmolLM2-135M-Instruct, 8 slots, 1 thread), redis-server and two `podium agent`
processes whose `llm` backends point at that server: one answering in at most 8 tokens (latency: the model's time
small and steady) and one in at most 64 (throughput). Then, interleaved so that machine load hits both sides alike:

- **latency per task**: a one-task Orchestration (centralCommand with the task given) through ``run_orchestration``,
  from the call to its outcome: run start and finish, selection, journal, budget, bus, the agent runtime, the llm
  backend, the model, and back. Directly: the same request (the body the backend sends, built by its own prompt
  code, streamed the same way) posted with a plain aiohttp session. Each request carries a fresh nonce of the same
  length on both sides, so no answer comes from the server's prompt cache. p50 and p99 of each, and the
  difference.
- **throughput**: centralCommand with N tasks at once against N concurrent direct requests (N = 1, 4, 8),
  completion tokens per second of wall time (Podium's from its agent's ``podium_agent_model_tokens_total``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import yaml

from podium.agent.backends.llm_prompts import build_messages
from podium.agent.backends.openai_wire import request_body
from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.bus import Bus
from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.records import decode_entry
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.runner import run_orchestration
from podium_localcluster.modelserver import MODEL_ALIAS, LlamaServer, locate
from podium_localcluster.redis_server import RedisServer, free_port

NAMESPACE = "bench"
TEXT = "Say hello to the team in one short sentence."
SEED = 42
SHORT, LONG = 8, 64  # max_tokens of the latency and the throughput tasks


@dataclass
class Plan:
    tasks: int  # one-task runs (and as many direct requests) for the latency percentiles
    widths: tuple[int, ...]  # tasks at once for the throughput comparison
    rounds: int  # repetitions of each width; medians are reported
    warmup: int = 3


FULL = Plan(tasks=100, widths=(1, 4, 8), rounds=3)
QUICK = Plan(tasks=30, widths=(1, 4, 8), rounds=1)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (no interpolation between two samples)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def agent_config(base_url: str, max_tokens: int) -> dict[str, Any]:
    llm = {"model": MODEL_ALIAS, "baseURL": base_url, "temperature": 0, "seed": SEED, "maxTokens": max_tokens}
    return {"role": "worker", "backend": {"llm": llm}, "concurrency": 8}


@contextmanager
def agent_process(name: str, redis_url: str, config: dict[str, Any], workdir: Path) -> Iterator[int]:
    """One `podium agent` process, ready; yields its metrics port."""
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = {
        **os.environ,
        "PODIUM_AGENT_NAME": name,
        "PODIUM_NAMESPACE": NAMESPACE,
        "PODIUM_REDIS_URL": redis_url,
        "PODIUM_REPLICA": f"{name}-0",
        "PODIUM_CONFIG": str(path),
        "PODIUM_HTTP_HOST": "127.0.0.1",
        "PODIUM_HTTP_PORT": str(port),
        "PODIUM_LOG_FORMAT": "text",
    }
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "podium", "agent"], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent {name} did not become ready: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def completion_tokens(port: int) -> float:
    """The agent's ``podium_agent_model_tokens_total{type="completion"}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("podium_agent_model_tokens_total{") and 'type="completion"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def task_input(nonce: str) -> dict[str, Any]:
    return {"text": TEXT, "nonce": nonce}


def spec(agent: str, nonces: list[str]) -> OrchestrationSpec:
    """centralCommand with one given task per nonce, each for ``agent`` (the only one with that capability)."""
    tasks = [{"name": f"t{i}", "input": task_input(n), "capabilities": [agent]} for i, n in enumerate(nonces)]
    return OrchestrationSpec.model_validate(
        {"strategy": "centralCommand", "centralCommand": {"tasks": tasks}, "limits": {"timeoutSeconds": 300}}
    )


def direct_body(index: int, nonce: str, max_tokens: int) -> dict[str, Any]:
    """What the llm backend sends for task ``t<index>`` of :func:`spec`: the same prompt code, the same options."""
    messages = build_messages(None, {"input": task_input(nonce), "task": f"t{index}"}, None)
    return request_body(
        MODEL_ALIAS, messages, temperature=0.0, max_tokens=max_tokens, seed=SEED, frequency_penalty=None, stream=True
    )


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int:
    """One streamed request read to its end; the completion tokens the server counted."""
    tokens = 0
    async with session.post(url, json=body) as response:
        response.raise_for_status()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            usage = json.loads(line[5:]).get("usage")
            if usage:
                tokens = int(usage.get("completion_tokens") or 0)
    return tokens


def nonce() -> str:
    return uuid.uuid4().hex[:12]


async def measure(plan: Plan, base_url: str, redis_url: str, ports: dict[str, int]) -> dict[str, Any]:
    client = aioredis.Redis.from_url(redis_url)
    bus = Bus(client)
    directory = AgentDirectory([AgentInfo(name=n, role="worker", capabilities={n: 1.0}, concurrency=8) for n in ports])
    url = f"{base_url}/chat/completions"
    backend: list[float] = []  # ms the agent's llm backend spent on each one-task run's task

    def journal_key(uid: str) -> str:
        return OrchestrationKeys(NAMESPACE, f"bench-{uid}").journal(uid)

    # llama-server closes the connection after each streamed answer (the backend re-sends once on a new one): a
    # new connection per request is the direct client's fastest way, and costs a loopback connect.
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=300), connector=aiohttp.TCPConnector(force_close=True)
    )

    async def podium(agent: str, width: int) -> float:
        uid = uuid.uuid4().hex[:12]
        started = time.perf_counter()
        outcome = await run_orchestration(
            client, directory, NAMESPACE, f"bench-{uid}", uid, spec(agent, [nonce() for _ in range(width)]), bus=bus
        )
        seconds = time.perf_counter() - started
        if outcome.phase != "Succeeded":
            raise RuntimeError(f"bench run ended {outcome.phase}: {outcome.message}")
        entries = [decode_entry(v) for v in (await client.hgetall(journal_key(uid))).values()]
        if any(e.agent != agent for e in entries):
            raise RuntimeError(f"bench run {uid} went to {[e.agent for e in entries]}, not only {agent}")
        if agent == "short":  # how long the agent's backend took (the model call as the agent timed it)
            (entry,) = entries
            backend.append(float(entry.result["duration_ms"]) if entry.result else float("nan"))
        return seconds

    async def direct(width: int, max_tokens: int) -> tuple[float, int]:
        started = time.perf_counter()
        tokens = await asyncio.gather(*(post(session, url, direct_body(i, nonce(), max_tokens)) for i in range(width)))
        return time.perf_counter() - started, sum(tokens)

    try:
        for _ in range(plan.warmup):  # connections, scripts, result streams, the model's first requests
            await podium("short", 1)
            await direct(1, SHORT)
        via, straight = [], []
        backend.clear()
        for i in range(plan.tasks):  # alternate which goes first, so neither always follows the other
            if i % 2:
                straight.append((await direct(1, SHORT))[0])
                via.append(await podium("short", 1))
            else:
                via.append(await podium("short", 1))
                straight.append((await direct(1, SHORT))[0])
        widths = []
        for width in plan.widths:
            rates: dict[str, list[float]] = {"podium": [], "direct": []}
            for r in range(plan.rounds):
                for side in ("podium", "direct") if r % 2 == 0 else ("direct", "podium"):
                    if side == "podium":
                        before = completion_tokens(ports["long"])
                        seconds = await podium("long", width)
                        tokens = completion_tokens(ports["long"]) - before
                    else:
                        seconds, tokens = await direct(width, LONG)
                    rates[side].append(tokens / seconds)
            podium_rate, direct_rate = statistics.median(rates["podium"]), statistics.median(rates["direct"])
            widths.append(
                {
                    "tasks": width,
                    "podium_tokens_per_s": round(podium_rate, 1),
                    "direct_tokens_per_s": round(direct_rate, 1),
                    "ratio": round(podium_rate / direct_rate, 3),
                }
            )
    finally:
        await session.close()
        await bus.close()
        await client.aclose()
    ms = {"podium": [s * 1000 for s in via], "direct": [s * 1000 for s in straight]}
    # Outside the model call: the run's time less what the agent's backend spent on the request (engine, Redis,
    # bus, agent runtime), free of the model's own variance.
    ms["outside_model"] = [total - inner for total, inner in zip(ms["podium"], backend, strict=True)]
    latency: dict[str, Any] = {
        side: {"p50_ms": round(percentile(v, 50), 2), "p99_ms": round(percentile(v, 99), 2)} for side, v in ms.items()
    }
    latency["overhead"] = {q: round(latency["podium"][q] - latency["direct"][q], 2) for q in ("p50_ms", "p99_ms")}
    # Each Podium run next to the direct request sent right before or after it: load shifts hit both of a pair.
    paired = [p - d for p, d in zip(ms["podium"], ms["direct"], strict=True)]
    latency["paired_difference_p50_ms"] = round(statistics.median(paired), 2)
    return {"latency": latency | {"tasks": plan.tasks, "max_tokens": SHORT}, "throughput": widths, "max_tokens": LONG}


def run(plan: Plan) -> dict[str, Any]:
    files = locate()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="podium-llm-bench-")))
        server = stack.enter_context(LlamaServer(files, parallel=max(plan.widths), context_size=512, threads=1))
        redis_server = stack.enter_context(RedisServer())
        ports = {
            name: stack.enter_context(
                agent_process(name, redis_server.url, agent_config(server.base_url, tokens), workdir)
            )
            for name, tokens in (("short", SHORT), ("long", LONG))
        }
        report = asyncio.run(measure(plan, server.base_url, redis_server.url, ports))
    return report | {"model": files.model.name, "plan": asdict(plan)}


def table(report: dict[str, Any]) -> str:
    lat = report["latency"]
    lines = [
        f"{report['model']}, one-task runs vs the same request direct ({lat['tasks']} each, max_tokens "
        f"{lat['max_tokens']}):",
        f"  podium p50 {lat['podium']['p50_ms']:.1f} ms, p99 {lat['podium']['p99_ms']:.1f} ms; direct p50 "
        f"{lat['direct']['p50_ms']:.1f} ms, p99 {lat['direct']['p99_ms']:.1f} ms; overhead p50 "
        f"{lat['overhead']['p50_ms']:+.1f} ms, p99 {lat['overhead']['p99_ms']:+.1f} ms (paired: "
        f"{lat['paired_difference_p50_ms']:+.1f} ms)",
        f"  podium outside the model call: p50 {lat['outside_model']['p50_ms']:.1f} ms, p99 "
        f"{lat['outside_model']['p99_ms']:.1f} ms",
        f"completion tokens/s, N tasks at once (max_tokens {report['max_tokens']}):",
    ]
    for w in report["throughput"]:
        lines.append(
            f"  N={w['tasks']}: podium {w['podium_tokens_per_s']:.0f}, direct {w['direct_tokens_per_s']:.0f} "
            f"(x{w['ratio']:.2f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(QUICK if args.quick else FULL)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
