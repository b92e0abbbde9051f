"""What tracing costs while it is off: each hook on the engine's and the agent's paths, timed in-process.

The hooks are the ones a task passes through (docs/observability.md): the engine's step wrapper around
``RunContext.run_task`` and its attempt start/end, the agent's task span and its record, the llm backend's model
span, and a task's encode/decode (the message gained a ``traceparent`` field). Best of 5 repeats, in ns per call.
The end-to-end comparison before/after is ``bench.orchestration`` (ms per engine step on a real Redis).

    .venv/bin/python -m bench.telemetry [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import timeit
from pathlib import Path
from typing import Any

from podium import telemetry
from podium.agent import tracing as agent_tracing
from podium.agent.backends.base import BackendOutput
from podium.agent.backends.llm import answered
from podium.agent.backends.openai_wire import Completion
from podium.agent.config import RuntimeConfig
from podium.agent.runtime import Outcome
from podium.api.agent import AgentSpec
from podium.dataplane.messages import Result, Task
from podium.engine import tracing as engine_tracing

N = 200_000


def best_ns(fn: Any, number: int = N) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


def step_wrapper_ns() -> float:
    """The wrapper's own cost: a wrapped no-op coroutine minus the bare one, awaited in one event loop."""

    async def bare(ctx: Any, step: str, kind: str, input: Any) -> Any:
        return None

    wrapped = engine_tracing.step(bare)

    async def loop(fn: Any, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await fn(None, "s", "execute", None)
        return time.perf_counter() - started

    async def both() -> float:
        plain = min([await loop(bare, N) for _ in range(5)])
        traced = min([await loop(wrapped, N) for _ in range(5)])
        return (traced - plain) / N * 1e9

    return asyncio.run(both())


def run() -> dict[str, Any]:
    assert not telemetry.enabled(), "unset the OTEL_* variables: this measures tracing off"
    task = Task("uid:stage-a:1", "execute", {"doc": "hello", "n": 3}, "bench", "w1", "bench/o", meta={"step": "a"})
    raw = task.to_json()
    result = Result(task.id, 1, True, {"ok": 1}, tokens=10, cost=0.001)
    attempts = engine_tracing.Attempts()
    spec = AgentSpec.model_validate({"role": "r", "backend": {"command": {"args": ["cat"]}}})
    config = RuntimeConfig(
        agent="w1", namespace="bench", redis_url="", redis_username=None, redis_password=None, replica="w1-0",
        config_path=Path("/dev/null"), spec=spec, http_host="127.0.0.1", http_port=0, log_format="json",
        grace_seconds=1, lease_seconds=1, stall_seconds=1,
    )  # fmt: skip
    outcome = Outcome(result, "ok", BackendOutput({"ok": 1}, tokens=10))
    completion = Completion("{}", "stop", 5, 5)

    def attempt() -> None:
        attempts.start("stage-a", task)
        attempts.end(task, result, "")

    def agent_task() -> None:
        with agent_tracing.task_scope(task, config) as span:
            agent_tracing.record(span, outcome)

    def model_call() -> None:
        with telemetry.model_span(model="m", base_url="http://127.0.0.1:8080/v1", temperature=0.0) as span:
            span.set(answered(completion))

    return {
        "engine step wrapper (per step)": step_wrapper_ns(),
        "engine attempt start+end (per attempt)": best_ns(attempt),
        "agent task span + record (per task)": best_ns(agent_task),
        "llm model span (per model call)": best_ns(model_call, N // 4),
        "task encode + decode (for scale)": best_ns(lambda: Task.from_json(task.to_json()), N // 4),
        "task decode (for scale)": best_ns(lambda: Task.from_json(raw), N // 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, ns in report.items():
        print(f"{name:45s} {ns:10.0f} ns")


if __name__ == "__main__":
    main()
