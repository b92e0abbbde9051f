"""Real `podium agent` processes against the session redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from podium.dataplane.bus import Bus
from podium_localcluster.redis_server import free_port
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent


@dataclass
class AgentProcess:
    name: str
    namespace: str
    replica: str
    port: int
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    spec: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def probe(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        _, body = self.probe("/metrics")
        for line in body.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def logs(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def write_spec(self, **changes: Any) -> None:
        self.spec.update(changes)
        self.config_path.write_text(yaml.safe_dump(self.spec))

    def wait_until(self, check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
        def exited() -> str | None:
            return None if self.proc.poll() is None else f"agent exited with {self.proc.returncode}"

        wait_for(what, check, timeout, 0.05, abort=exited, detail=lambda: self.log_path.read_text()[-4000:])

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return self.probe("/readyz")[0] == 200
            except OSError:
                return False

        self.wait_until(ready, what="/readyz 200")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[Bus]:
    client = aioredis.Redis.from_url(redis_url)
    b = Bus(client)
    yield b
    await b.close()
    await client.aclose()


StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def start_agent(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[StartAgent]:
    started: list[AgentProcess] = []

    def start(
        name: str,
        spec: dict[str, Any],
        *,
        replica: str | None = None,
        wait: bool = True,
        redis: str | None = None,
        **env: str,
    ) -> AgentProcess:
        replica = replica or f"{name}-{len(started)}"
        config_path = tmp_path / f"{replica}.yaml"
        config_path.write_text(yaml.safe_dump(spec))
        log_path = tmp_path / f"{replica}.log"
        port = free_port()
        full_env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "PODIUM_AGENT_NAME": name,
            "PODIUM_NAMESPACE": namespace,
            "PODIUM_REDIS_URL": redis or redis_url,
            "PODIUM_REPLICA": replica,
            "PODIUM_CONFIG": str(config_path),
            "PODIUM_HTTP_HOST": "127.0.0.1",
            "PODIUM_HTTP_PORT": str(port),
            "PODIUM_LEASE_SECONDS": "1.5",
            **env,
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(VENV_BIN / "podium"), "agent"], env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        agent = AgentProcess(name, namespace, replica, port, config_path, log_path, proc, dict(spec))
        started.append(agent)
        if wait:
            agent.wait_ready()
        return agent

    yield start
    for agent in started:
        agent.stop(timeout=10)
