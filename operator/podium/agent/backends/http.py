"""HTTP backend: POST the task as JSON to a URL; the JSON answer is the output (or an output envelope)."""

from __future__ import annotations

import json

import aiohttp

from podium.agent.backends.base import BackendError, BackendOutput, TaskLike, from_value, tail, task_document
from podium.api.agent import HTTPBackend


class HTTPRunner:
    name = "http"

    def __init__(self, spec: HTTPBackend) -> None:
        self.spec = spec
        self.timeout_seconds = spec.timeout_seconds
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession()

    def handles(self, kind: str) -> bool:
        return kind != "bid"

    async def run(self, task: TaskLike) -> BackendOutput:
        await self.start()
        assert self.session is not None
        try:
            async with self.session.post(self.spec.url, json=task_document(task), headers=self.spec.headers) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise BackendError(f"http: {resp.status} {resp.reason} from {self.spec.url}: {tail(text, 500)}")
        except aiohttp.ClientError as exc:
            raise BackendError(f"http: cannot reach {self.spec.url}: {exc}") from exc
        try:
            return from_value(json.loads(text))
        except json.JSONDecodeError:
            raise BackendError(f"http: answer from {self.spec.url} is not JSON: {tail(text, 500)}") from None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
