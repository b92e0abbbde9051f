"""Operator settings: the Redis URL of any deployment, and what agent pods are given."""

from __future__ import annotations

import pytest

from podium.operator.settings import Settings


@pytest.mark.parametrize(
    ("url", "agents"),
    [
        ("redis://:secret@redis.example:6380/0", "redis://redis.example:6380/0"),
        ("redis+sentinel://:secret@s1:26379,s2:26379/mymaster", "redis+sentinel://s1:26379,s2:26379/mymaster"),
        ("redis+cluster://admin:secret@n1:6379,n2:6379", "redis+cluster://n1:6379,n2:6379"),
    ],
)
def test_agent_pods_get_the_url_without_the_operators_credentials(url: str, agents: str) -> None:
    assert Settings(redis_url=url).pod_redis_url == agents
    assert Settings(redis_url=url, agent_redis_url="redis://other:1/0").pod_redis_url == "redis://other:1/0"


def test_a_bad_url_stops_the_operator_naming_the_variable() -> None:
    with pytest.raises(SystemExit, match=r"PODIUM_REDIS_URL: .*redis\+cluster://"):
        Settings(redis_url="http://redis:6379").check()
    with pytest.raises(SystemExit, match="PODIUM_MAX_PAYLOAD_BYTES"):
        Settings(max_payload_bytes=10).check()
    Settings(redis_url="redis+cluster://n1:6379").check()
