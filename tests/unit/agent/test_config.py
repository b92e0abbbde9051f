from __future__ import annotations

from pathlib import Path

import pytest

from podium.agent.config import ConfigError, from_env, parse_spec

SPEC = "role: reviewer\nbackend: {command: {args: [ruff, check, '-']}}\nconcurrency: 2\n"


def env_for(path: Path, **extra: str) -> dict[str, str]:
    base = {
        "PODIUM_AGENT_NAME": "reviewer",
        "PODIUM_NAMESPACE": "team-a",
        "PODIUM_REDIS_URL": "redis://127.0.0.1:6379/0",
        "PODIUM_CONFIG": str(path),
    }
    return {**base, **extra}


def test_reads_env_and_yaml_spec(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(SPEC)
    cfg = from_env(env_for(path, PODIUM_REPLICA="r-1", PODIUM_HTTP_PORT="9000", PODIUM_REDIS_PASSWORD="pw"))
    assert (cfg.agent, cfg.namespace, cfg.replica, cfg.http_port) == ("reviewer", "team-a", "r-1", 9000)
    assert cfg.redis_password == "pw" and cfg.redis_username is None
    assert cfg.spec.concurrency == 2 and cfg.spec.backend.type == "command"
    assert cfg.http_host == "0.0.0.0" and cfg.grace_seconds == 25.0 and cfg.log_format == "json"


def test_replica_defaults_to_hostname(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "agent.json"
    path.write_text('{"role": "x", "backend": {"python": {"entrypoint": "podium.demo.agents:planner"}}}')
    assert from_env(env_for(path)).replica == socket.gethostname()


def test_all_missing_variables_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        from_env({})
    for name in ("PODIUM_AGENT_NAME", "PODIUM_NAMESPACE", "PODIUM_REDIS_URL", "PODIUM_CONFIG"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"PODIUM_HTTP_PORT": "http"}, "PODIUM_HTTP_PORT"),
        ({"PODIUM_LOG_FORMAT": "xml"}, "PODIUM_LOG_FORMAT"),
        ({"PODIUM_REDIS_URL": "127.0.0.1:6379"}, "PODIUM_REDIS_URL"),
        ({"PODIUM_GRACE_SECONDS": "soon"}, "PODIUM_GRACE_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, extra: dict[str, str], needle: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(SPEC)
    with pytest.raises(ConfigError, match=needle):
        from_env(env_for(path, **extra))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        from_env(env_for(tmp_path / "missing.yaml"))


def test_invalid_spec_names_the_field() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        parse_spec("role: x\nbackend: {python: {entrypoint: 'a:b'}}\nconcurrency: 0\n")
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_spec("role: x\nbackend: {}\n")
    with pytest.raises(ConfigError, match="mapping"):
        parse_spec("- a\n- b\n")


def test_whole_agent_object_accepted() -> None:
    spec = parse_spec(
        "apiVersion: podium.dev/v1alpha1\nkind: Agent\nmetadata: {name: a}\nspec:\n  role: x\n"
        "  backend: {http: {url: 'http://127.0.0.1:1/'}}\n"
    )
    assert spec.backend.type == "http"


@pytest.mark.parametrize(
    ("url", "wait"),
    [
        ("redis://127.0.0.1:6379/0", 0),
        ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster", 1),
        ("redis+sentinel://10.0.0.1:26379/mymaster?wait_replicas=0", 0),
        ("redis+cluster://10.0.0.1:6379,10.0.0.2:6379", 0),
    ],
)
def test_every_deployment_url_is_accepted_with_its_durability(tmp_path: Path, url: str, wait: int) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(SPEC)
    assert from_env(env_for(path, PODIUM_REDIS_URL=url)).wait_replicas == wait
