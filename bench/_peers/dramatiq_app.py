"""Dramatiq with a Redis broker and the Results middleware (Redis backend); the actor does nothing.

PODIUM_BENCH_REDIS_URL=redis://... dramatiq bench._peers.dramatiq_app
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

URL = os.environ.get("PODIUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=URL)
backend = RedisBackend(url=URL)
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def noop(x: Any) -> Any:
    return x
