"""HTTP backend: POST the task as JSON to a URL; the JSON answer is the output (or an output envelope)."""

from __future__ import annotations

import json

from podium.agent.backends._http import JSONPoster
from podium.agent.backends.base import BackendError, BackendOutput, TaskLike, from_value, tail, task_document
from podium.api.agent import HTTPBackend


class HTTPRunner:
    name = "http"

    def __init__(self, spec: HTTPBackend) -> None:
        self.spec = spec
        self.timeout_seconds = spec.timeout_seconds
        self.client = JSONPoster("http")

    async def start(self) -> None:
        await self.client.start()

    def handles(self, kind: str) -> bool:
        return kind != "bid"

    async def run(self, task: TaskLike) -> BackendOutput:
        text = await self.client.post(self.spec.url, task_document(task), self.spec.headers)
        try:
            return from_value(json.loads(text))
        except json.JSONDecodeError:
            raise BackendError(f"http: answer from {self.spec.url} is not JSON: {tail(text, 500)}") from None

    async def close(self) -> None:
        await self.client.close()
