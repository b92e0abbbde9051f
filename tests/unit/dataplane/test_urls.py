"""Redis URLs of every supported deployment: parsed, redacted, stripped of credentials; bad ones named."""

from __future__ import annotations

import pytest

from podium.dataplane.connection import parse_url, redact, target_url, without_credentials


def test_a_single_server_url_keeps_its_own_options() -> None:
    t = parse_url("redis://user:p%40ss@redis.example:6380/2?socket_timeout=5&wait_replicas=1")
    assert (t.kind, t.username, t.password, t.wait_replicas) == ("standalone", "user", "p@ss", 1)
    assert t.server_url == "redis://user:p%40ss@redis.example:6380/2?socket_timeout=5"  # ours removed, redis-py's kept
    assert parse_url("unix:///run/redis.sock?db=1").kind == "standalone"
    assert parse_url("rediss://h:1/0").wait_replicas == 0


def test_a_sentinel_url_names_sentinels_master_and_db() -> None:
    t = parse_url("redis+sentinel://u:pw@10.0.0.1:26379,10.0.0.2,[::1]:5000/mymaster/3?sentinel_password=s")
    assert t.kind == "sentinel" and t.master == "mymaster" and t.db == 3
    assert t.nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 5000))
    assert (t.username, t.password, t.sentinel_password) == ("u", "pw", "s")
    assert t.wait_replicas == 1  # a failover must not lose an acknowledged result
    assert parse_url("redis+sentinel://h:1/m?wait_replicas=0").wait_replicas == 0
    assert parse_url("rediss+sentinel://h:1/m").ssl


def test_a_cluster_url_lists_seeds() -> None:
    t = parse_url("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001")
    assert t.kind == "cluster" and t.nodes == (("127.0.0.1", 7000), ("127.0.0.1", 7001)) and t.password == "pw"
    assert parse_url(target_url("cluster", [("127.0.0.1", 7000)])).nodes == (("127.0.0.1", 7000),)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:1", "expected one of"),
        ("redis+sentinel://h:1", "<master name>"),
        ("redis+sentinel://h:1/m/x", "<master name>"),
        ("redis+cluster://h:1/2", "only database 0"),
        ("redis+cluster://h:1?wait_replicas=1", "cannot WAIT"),
        ("redis+cluster://h:x", "bad port"),
        ("redis+cluster://h:1,,h:2", "empty host"),
        ("redis+sentinel://h:1/m?socket_timeout=1", "unknown parameters"),
        ("redis://h:1/0?wait_replicas=many", "whole number"),
    ],
)
def test_bad_urls_say_what_is_expected(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_url(url)


def test_messages_never_carry_credentials() -> None:
    assert redact("redis://u:secret@h:1/0") == "redis://h:1/0"
    assert redact("redis+sentinel://u:secret@a:1,b:2/m?sentinel_password=x&wait_replicas=1") == (
        "redis+sentinel://a:1,b:2/m?sentinel_password=***&wait_replicas=1"
    )
    with pytest.raises(ValueError) as err:
        parse_url("http://u:secret@h:1")
    assert "secret" not in str(err.value)


def test_agents_get_the_url_without_the_operators_credentials() -> None:
    assert without_credentials("redis://:pw@h:6379/0") == "redis://h:6379/0"
    assert without_credentials("redis+cluster://u:pw@a:1,b:2") == "redis+cluster://a:1,b:2"
    assert (
        without_credentials("redis+sentinel://:pw@a:1,b:2/m?wait_replicas=0")
        == "redis+sentinel://a:1,b:2/m?wait_replicas=0"
    )
    assert without_credentials("redis+cluster://:pw@a:1?x=1") == "redis+cluster://a:1?x=1"
