"""Celery with a Redis broker and result backend; the task does nothing.

PODIUM_BENCH_REDIS_URL=redis://... celery -A bench._peers.celery_app worker --pool=solo
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

URL = os.environ.get("PODIUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@app.task(name="noop")
def noop(x: Any) -> Any:
    return x
