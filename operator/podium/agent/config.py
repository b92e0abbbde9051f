"""Runtime configuration of `podium agent`: environment variables plus the Agent spec file.

Pure parsing: nothing here opens sockets, so every rule is unit-testable and a bad pod fails fast with exit 2.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from podium.api.agent import AgentSpec
from podium.dataplane.connection import parse_url
from podium.dataplane.consumer import DEFAULT_LEASE_SECONDS

DEFAULT_HTTP_PORT = 8080
DEFAULT_GRACE_SECONDS = 25.0
DEFAULT_STALL_SECONDS = 10.0


class ConfigError(Exception):
    """The agent cannot start with this configuration; the message says what to fix."""


@dataclass(frozen=True)
class RuntimeConfig:
    agent: str
    namespace: str
    redis_url: str  # any form podium.dataplane.connection.parse_url takes (one server, Sentinel, Cluster)
    redis_username: str | None
    redis_password: str | None
    replica: str
    config_path: Path
    spec: AgentSpec
    http_host: str
    http_port: int
    log_format: str
    grace_seconds: float
    lease_seconds: float
    stall_seconds: float
    wait_replicas: int = 0  # replicas that must hold a result before it counts as stored (the URL's wait_replicas)


def load_spec(path: Path) -> AgentSpec:
    """Read and validate an Agent spec (camelCase fields, as in the CRD) from a YAML or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"PODIUM_CONFIG: cannot read {path}: {exc.strerror or exc}") from exc
    return parse_spec(text, source=str(path))


def parse_spec(text: str, *, source: str = "<config>") -> AgentSpec:
    try:
        data: Any = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{source}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of Agent spec fields, got {type(data).__name__}")
    # Accept a whole Agent object too, so `kubectl get agent x -o yaml > f` works as a config file.
    if "spec" in data and "kind" in data:
        data = data["spec"]
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: invalid Agent spec: {problems}") from exc


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be >= {minimum:g}")
    return value


def from_env(env: Mapping[str, str]) -> RuntimeConfig:
    """Build the runtime configuration; every missing or malformed variable is reported at once."""
    problems: list[str] = []
    for required in ("PODIUM_AGENT_NAME", "PODIUM_NAMESPACE", "PODIUM_REDIS_URL", "PODIUM_CONFIG"):
        if not env.get(required):
            problems.append(f"{required} is not set")
    redis_url = env.get("PODIUM_REDIS_URL", "")
    wait_replicas = 0
    if redis_url:
        try:
            wait_replicas = parse_url(redis_url).wait_replicas
        except ValueError as exc:
            problems.append(f"PODIUM_REDIS_URL: {exc}")
    port_raw = env.get("PODIUM_HTTP_PORT") or str(DEFAULT_HTTP_PORT)
    if not port_raw.isdigit() or not 0 <= int(port_raw) <= 65535:
        problems.append(f"PODIUM_HTTP_PORT={port_raw!r}: expected a port number 0-65535")
    log_format = env.get("PODIUM_LOG_FORMAT") or "json"
    if log_format not in ("json", "text"):
        problems.append(f"PODIUM_LOG_FORMAT={log_format!r}: expected json or text")
    if problems:
        raise ConfigError("; ".join(problems))
    config_path = Path(env["PODIUM_CONFIG"])
    return RuntimeConfig(
        agent=env["PODIUM_AGENT_NAME"],
        namespace=env["PODIUM_NAMESPACE"],
        redis_url=redis_url,
        redis_username=env.get("PODIUM_REDIS_USERNAME") or None,
        redis_password=env.get("PODIUM_REDIS_PASSWORD") or None,
        replica=env.get("PODIUM_REPLICA") or socket.gethostname(),
        config_path=config_path,
        spec=load_spec(config_path),
        http_host=env.get("PODIUM_HTTP_HOST") or "0.0.0.0",
        http_port=int(port_raw),
        log_format=log_format,
        grace_seconds=_number(env, "PODIUM_GRACE_SECONDS", DEFAULT_GRACE_SECONDS),
        lease_seconds=_number(env, "PODIUM_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, minimum=0.3),
        stall_seconds=_number(env, "PODIUM_STALL_SECONDS", DEFAULT_STALL_SECONDS, minimum=0.1),
        wait_replicas=wait_replicas,
    )
