"""The model server on this machine: llama-server with SmolLM2-135M-Instruct, as the tests and the chart run it.

    python -m bench.run --only model_server

Per thread count: time from start to a 200 on /health, resident memory when ready and after the load, time to the
first streamed token, generation and prompt speed of one request (the server's own `timings`), and the tokens per
second of two requests at once (two slots). Figures in docs/model-server.md.
"""

from __future__ import annotations

import concurrent.futures
import json
import statistics
import time
import urllib.request
from typing import Any

from podium_localcluster.modelserver import LlamaServer, locate

STORY = "Write a short story about a robot learning to paint."


def post(server: LlamaServer, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def first_token_seconds(server: LlamaServer) -> float:
    body = {"messages": [{"role": "user", "content": "Say hello."}], "stream": True, "max_tokens": 16, "seed": 1}
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        for line in response:
            if line.startswith(b"data:") and b'"content"' in line:
                return time.perf_counter() - started
    raise RuntimeError("the stream ended without a token")


def rss_mb(server: LlamaServer) -> float:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return round(kib / 1024, 1)


def story(server: LlamaServer, seed: int, tokens: int) -> dict[str, Any]:
    return post(server, {"messages": [{"role": "user", "content": STORY}], "seed": seed, "max_tokens": tokens})


def ready_seconds(server: LlamaServer) -> float:
    assert server.ready_seconds is not None, "entered, so it answered /health"
    return server.ready_seconds


def measure(threads: int, starts: int, requests: int, tokens: int) -> dict[str, Any]:
    files = locate()
    ready: list[float] = []
    for _ in range(starts - 1):
        with LlamaServer(files, parallel=2, threads=threads) as s:
            ready.append(ready_seconds(s))
    with LlamaServer(files, parallel=2, threads=threads) as s:
        ready.append(ready_seconds(s))
        idle = rss_mb(s)
        ttft = statistics.median(first_token_seconds(s) for _ in range(requests))
        single = [story(s, seed, tokens)["timings"] for seed in range(requests)]
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pair = list(pool.map(lambda seed: story(s, seed, tokens), range(2)))
        pair_seconds = time.perf_counter() - started
        return {
            "threads": threads,
            "ready_s": round(statistics.median(ready), 2),
            "rss_ready_mb": idle,
            "rss_after_mb": rss_mb(s),
            "first_token_s": round(ttft, 3),
            "generate_tokens_per_s": round(statistics.median(t["predicted_per_second"] for t in single), 1),
            "prompt_tokens_per_s": round(statistics.median(t["prompt_per_second"] for t in single), 1),
            "two_parallel_tokens_per_s": round(sum(a["usage"]["completion_tokens"] for a in pair) / pair_seconds, 1),
        }


def run(quick: bool) -> dict[str, Any]:
    starts, requests, tokens = (2, 2, 100) if quick else (5, 5, 200)
    return {"model": locate().model.name, "rows": [measure(t, starts, requests, tokens) for t in (1, 2)]}


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['model']}, two slots:"]
    for r in report["rows"]:
        lines.append(
            f"  threads {r['threads']}: ready {r['ready_s']} s, RSS {r['rss_ready_mb']} -> {r['rss_after_mb']} MB, "
            f"first token {r['first_token_s']} s, generate {r['generate_tokens_per_s']} tok/s, prompt "
            f"{r['prompt_tokens_per_s']} tok/s, two at once {r['two_parallel_tokens_per_s']} tok/s"
        )
    return "\n".join(lines)
