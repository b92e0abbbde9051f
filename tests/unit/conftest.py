"""The unit tier runs no server: a unit test that asks for Redis fails and says where it belongs."""

from __future__ import annotations

import pytest

WHERE = "the unit tier starts no server: a test that needs redis-server belongs in tests/integration"


@pytest.fixture(scope="session")
def redis_server() -> None:
    pytest.fail(WHERE)


@pytest.fixture
def fresh_redis() -> None:
    pytest.fail(WHERE)
