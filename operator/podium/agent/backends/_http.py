"""The HTTP client the http and llm backends share: one aiohttp session, opened lazily, and a JSON POST whose
failures (refused connection, 4xx/5xx) become BackendErrors that name the backend and the endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from podium.agent.backends.base import BackendError, tail


class JSONPoster:
    def __init__(self, backend: str) -> None:
        self.backend = backend  # the prefix of every error message: "http", "llm"
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession()

    async def post(self, url: str, body: Any, headers: Mapping[str, str] | None, shown_url: str | None = None) -> str:
        """POST `body` as JSON to `url` and return the answer's text; errors mention `shown_url` (default: url)."""
        await self.start()
        assert self.session is not None
        shown = shown_url or url
        try:
            async with self.session.post(url, json=body, headers=headers) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise BackendError(f"{self.backend}: {resp.status} {resp.reason} from {shown}: {tail(text, 500)}")
        except aiohttp.ClientError as exc:
            raise BackendError(f"{self.backend}: cannot reach {shown}: {exc}") from exc
        return text

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
