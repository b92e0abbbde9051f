"""Agent backends for the orchestration cluster tests: the demo agents, counting every execution.

Agent pods import this module (PYTHONPATH points here); each call bumps a per-task counter in the test's
Redis, so a test can prove no task ran twice across an operator restart. ``SLOW_SECONDS`` slows every task
so a test can act mid-run. ``flaky`` fails while the key ``podium-test:fail:<namespace>/<agent>`` exists, so a
test can break an agent and mend it without touching its pods. No test functions here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import redis

from podium.demo import agents as demo

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["COUNT_REDIS_URL"])
    return _client


def _count(task: Any) -> None:
    _redis().hincrby(f"podium-test:exec:{task.orchestration}", str(task.id), 1)


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


def _flaky(task: Any) -> Any:
    if _redis().exists(f"podium-test:fail:{task.namespace}/{task.agent}"):
        raise RuntimeError("told to fail")
    return demo.analyzer(task)


_flaky.kinds = demo.analyzer.kinds  # type: ignore[attr-defined]
flaky = _counted(_flaky)
