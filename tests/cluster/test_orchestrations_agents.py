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


planner = _counted(demo.planner)
researcher = _counted(demo.researcher)
analyzer = _counted(demo.analyzer)
synthesizer = _counted(demo.synthesizer)
documenter = _counted(demo.documenter)
