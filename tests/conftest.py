"""Shared fixtures. Servers are real: redis-server on a free loopback port, the local cluster for tests/cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.localcluster.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent

# Fixtures of shared real servers: model_server (llama-server with a small model).
pytest_plugins = ["tests.support.model_server"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder is the tier: tests/unit -> unit, tests/integration -> integration, ...
    for item in items:
        tier = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if tier in ("unit", "integration", "cluster", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (no persistence). Tests isolate themselves by key prefix/namespace."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, with AOF on: for tests that restart or crash Redis."""
    with RedisServer(appendonly=True) as server:
        yield server
