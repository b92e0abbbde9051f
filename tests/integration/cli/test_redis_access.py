"""How `podium run result|history|state|snapshot|rollback|broadcast` reach Podium's Redis: a Redis that is not
there, or refuses the password, is one line naming where the command looked (without the password) and how to
point it elsewhere, exit code 1; not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from podium.cli.redis_access import RedisUnreachable, with_redis
from podium.dataplane.state import SharedState
from podium_localcluster.redis_server import RedisServer, free_port

PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def guarded() -> Iterator[RedisServer]:
    with RedisServer() as server:  # a server of its own: it gets a password once it is up
        redis.Redis(host=server.host, port=server.port).config_set("requirepass", PASSWORD)
        yield server


async def listing(client: Any) -> Any:
    """What `podium run state NAME` reads."""
    return await SharedState(client, "team", "run").listing()


def test_a_redis_that_is_not_there_is_one_line_saying_where_and_how_to_point_elsewhere() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnreachable) as raised:
        with_redis(url, listing)
    message = str(raised.value.code)
    assert message.startswith(f"podium run: Redis at redis://127.0.0.1:{url.rsplit(':', 1)[1]} cannot be reached")
    assert "--redis-url or PODIUM_REDIS_URL" in message and "\n" not in message
    assert PASSWORD not in message


def test_a_wrong_password_is_said_as_such(guarded: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RedisUnreachable, match="refused the credentials") as raised:
        with_redis(f"redis://:wrong@{guarded.host}:{guarded.port}/0", listing)
    assert "wrong" not in str(raised.value.code)
    # The right one, from PODIUM_REDIS_PASSWORD as the other commands take it, reads the state.
    monkeypatch.setenv("PODIUM_REDIS_PASSWORD", PASSWORD)
    assert with_redis(f"redis://{guarded.host}:{guarded.port}/0", listing) == []


def test_a_url_that_is_not_redis_is_refused_naming_it() -> None:
    async def nothing(client: Any) -> None:
        raise AssertionError("no client should be made")

    with pytest.raises(RedisUnreachable, match=r"--redis-url / PODIUM_REDIS_URL: Redis URL 'http://x'"):
        with_redis("http://x", nothing)
