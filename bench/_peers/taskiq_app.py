"""taskiq with taskiq-redis: RedisStreamBroker and RedisAsyncResultBackend; the task does nothing.

PODIUM_BENCH_REDIS_URL=redis://... taskiq worker bench._peers.taskiq_app:broker
"""

from __future__ import annotations

import os
from typing import Any

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ.get("PODIUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
broker = RedisStreamBroker(URL).with_result_backend(RedisAsyncResultBackend(URL, result_ex_time=3600))


@broker.task(task_name="noop")
async def noop(x: Any) -> Any:
    return x
