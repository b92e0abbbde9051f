"""Agent backends for tests/cluster/test_orchestrations.py: the demo agents, counting every execution.

Agent pods import this module (PYTHONPATH points here); each call bumps a per-task counter in the test's
Redis, so a test can prove no task ran twice across an operator restart. ``SLOW_SECONDS`` slows every task
so a test can act mid-run. No test functions here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import redis

from podium.demo import agents as demo

_client: redis.Redis | None = None


def _count(task: Any) -> None:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["COUNT_REDIS_URL"])
    _client.hincrby(f"podium-test:exec:{task.orchestration}", str(task.id), 1)


def _counted(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(task: Any) -> Any:
        _count(task)
        time.sleep(float(os.environ.get("SLOW_SECONDS") or 0))
        return fn(task)

    run.kinds = fn.kinds  # type: ignore[attr-defined]
    return run


def _evaluator(task: Any) -> Any:
    # The swarm asks for one score per solution; the demo analyzer answers one score for its whole input
    # (reported upstream), so the evaluator scores each solution with the demo's own coverage measure.
    data = task.input if isinstance(task.input, dict) else {}
    if str(task.kind) == "evaluate" and isinstance(data.get("solutions"), list):
        problem = data.get("input")
        problem = problem.get("problem", problem) if isinstance(problem, dict) else problem
        return {"scores": [demo.coverage(s, problem) for s in data["solutions"]]}
    return demo.analyzer(task)


def _planner(task: Any) -> Any:
    # centralCommand's plan is a list of {name, input, capabilities}; the demo planner's richer task graph
    # (capability, kind, dependsOn) fails that schema (reported upstream), so it is reshaped here.
    out = demo.planner(task)
    if str(task.kind) == "plan" and isinstance(out, dict) and isinstance(out.get("tasks"), list):
        out["tasks"] = [
            {
                "name": t["name"],
                "input": t.get("input"),
                "capabilities": [t["capability"]] if t.get("capability") else [],
            }
            for t in out["tasks"]
        ]
    return out


_evaluator.kinds = demo.analyzer.kinds  # type: ignore[attr-defined]
_planner.kinds = demo.planner.kinds  # type: ignore[attr-defined]

planner = _counted(_planner)
researcher = _counted(demo.researcher)
analyzer = _counted(_evaluator)
synthesizer = _counted(demo.synthesizer)
documenter = _counted(demo.documenter)
