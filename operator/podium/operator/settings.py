"""Operator configuration: flags override environment variables, which override defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from podium import __version__
from podium.dataplane.connection import parse_url, without_credentials
from podium.dataplane.library import DEFAULT_MAX_BYTES
from podium.telemetry.config import agent_env

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"podium operator: {name}={raw!r} is not a whole number") from None


@dataclass
class Settings:
    redis_url: str = DEFAULT_REDIS_URL  # any form podium.dataplane.connection.parse_url takes (Sentinel, Cluster)
    redis_password: str | None = None
    agent_redis_url: str | None = None  # what agent pods dial; defaults to redis_url without credentials
    max_payload_bytes: int = DEFAULT_MAX_BYTES  # the largest task or result Redis stores (the library's limit)
    agent_image: str = f"ghcr.io/podium-dev/podium-agent:{__version__}"
    log_format: str = "json"
    heartbeat_lease_seconds: int = 10
    health_interval_seconds: int = 5
    resync_seconds: int = 120
    startup_grace_seconds: int = 30
    team_interval_seconds: int = 5
    run_lease_seconds: int = 6  # a replica silent this long loses its runs to the others
    namespaces: list[str] = field(default_factory=list)
    tracing_env: tuple[tuple[str, str], ...] = ()  # OTEL_* variables agent pods get (docs/observability.md)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            redis_url=os.environ.get("PODIUM_REDIS_URL", DEFAULT_REDIS_URL),
            redis_password=os.environ.get("PODIUM_REDIS_PASSWORD") or None,
            agent_redis_url=os.environ.get("PODIUM_AGENT_REDIS_URL") or None,
            agent_image=os.environ.get("PODIUM_AGENT_IMAGE") or cls.agent_image,
            log_format=os.environ.get("PODIUM_LOG_FORMAT", "json"),
            heartbeat_lease_seconds=_int_env("PODIUM_HEARTBEAT_LEASE_SECONDS", 10),
            health_interval_seconds=_int_env("PODIUM_HEALTH_INTERVAL_SECONDS", 5),
            resync_seconds=_int_env("PODIUM_RESYNC_SECONDS", 120),
            startup_grace_seconds=_int_env("PODIUM_STARTUP_GRACE_SECONDS", 30),
            tracing_env=agent_env(os.environ),
            max_payload_bytes=_int_env("PODIUM_MAX_PAYLOAD_BYTES", DEFAULT_MAX_BYTES),
            run_lease_seconds=_int_env("PODIUM_RUN_LEASE_SECONDS", 6),
        )

    def check(self) -> None:
        """Refuse settings the operator cannot run with, naming the fix."""
        for name, url in (("PODIUM_REDIS_URL", self.redis_url), ("PODIUM_AGENT_REDIS_URL", self.agent_redis_url)):
            if url:
                try:
                    parse_url(url)
                except ValueError as exc:
                    raise SystemExit(f"podium operator: {name}: {exc}") from None
        if self.max_payload_bytes < 1024:
            raise SystemExit(f"podium operator: PODIUM_MAX_PAYLOAD_BYTES={self.max_payload_bytes} is below 1024")

    @property
    def pod_redis_url(self) -> str:
        """Agents get their own credentials from their Secret, never the operator's."""
        if self.agent_redis_url:
            return self.agent_redis_url
        return without_credentials(self.redis_url)
