"""Podium's Redis as the `podium run` commands reach it: one client from ``--redis-url`` (one server, Sentinel or
Cluster, as the operator's), and a Redis that cannot be reached said in one line, naming where the command looked
and how to point it elsewhere, instead of a traceback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

T = TypeVar("T")
WHERE = (
    "set --redis-url or PODIUM_REDIS_URL to Podium's Redis (a Helm release's: redis://:<password>@<host>:6379/0, "
    "the password in Secret <release>-redis; docs/operator.md)"
)


class RedisUnreachable(SystemExit):
    """Redis refused or did not answer: one line, exit code 1."""


def unreachable(url: str, exc: Exception) -> RedisUnreachable:
    from podium.dataplane.connection import redact

    what = "refused the credentials" if isinstance(exc, AuthenticationError) else "cannot be reached"
    return RedisUnreachable(f"podium run: Redis at {redact(url)} {what} ({exc}): {WHERE}")


def with_redis(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """``work(client)`` on a client of ``url`` (PODIUM_REDIS_USERNAME / _PASSWORD override the URL's credentials),
    closed after."""
    from podium.dataplane.connection import connect

    async def go() -> T:
        try:
            client = connect(
                url,
                username=os.environ.get("PODIUM_REDIS_USERNAME") or None,
                password=os.environ.get("PODIUM_REDIS_PASSWORD") or None,
                socket_connect_timeout=5,
                socket_timeout=10,
            )
        except ValueError as exc:  # not a Redis URL
            raise RedisUnreachable(f"podium run: --redis-url / PODIUM_REDIS_URL: {exc}") from None
        try:
            return await work(client)
        except (ConnectionError, TimeoutError) as exc:  # AuthenticationError is a ConnectionError
            raise unreachable(url, exc) from None
        finally:
            await client.aclose()

    return asyncio.run(go())
