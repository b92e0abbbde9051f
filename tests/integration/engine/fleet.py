"""A fleet of real `podium agent` processes for the engine tests, and helpers to read what they did.

The processes are generic workers ``w1..wN`` running :mod:`engine_agents`; each test gives them roles,
capabilities and priorities through the AgentDirectory it builds, which is the engine's whole view of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import yaml

from podium.api.agent import Backoff, CircuitBreaker, Resilience, Retry
from podium.api.orchestration import OrchestrationSpec
from podium.dataplane.bus import Bus
from podium.engine.directory import AgentDirectory, AgentInfo, TeamInfo
from podium.engine.progress import Progress
from podium.engine.runner import RunOutcome, run_orchestration
from podium_localcluster.redis_server import free_port

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
WORKERS = [f"w{i}" for i in range(1, 7)]

SPEC = {"role": "worker", "backend": {"python": {"entrypoint": "engine_agents:behave"}}, "concurrency": 8}


@dataclass
class Fleet:
    namespace: str
    redis_url: str
    procs: list[subprocess.Popen[bytes]]

    def sync(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def set_mode(self, agent: str, **mode: Any) -> None:
        self.sync().set(f"t:{self.namespace}:mode:{agent}", json.dumps(mode))

    def reset(self) -> None:
        """Forget modes, injected-failure counters, breakers and stats: each test starts from healthy agents."""
        r = self.sync()
        for pattern in (f"t:{self.namespace}:mode:*", f"t:{self.namespace}:fails:*", f"podium:{{{self.namespace}/*"):
            keys = list(r.scan_iter(pattern))
            keys = [k for k in keys if not k.endswith((b":inbox", b":hb", b":results"))]
            if keys:
                r.delete(*keys)

    def count(self, uid: str, step: str) -> int:
        return int(self.sync().get(f"t:{self.namespace}:count:{uid}:{step}") or 0)

    def input(self, uid: str, step: str) -> Any:
        """What the last task of ``step`` was given."""
        raw = self.sync().get(f"t:{self.namespace}:input:{uid}:{step}")
        return None if raw is None else json.loads(raw)

    def log(self, uid: str) -> list[tuple[str, str, str]]:
        rows = self.sync().lrange(f"t:{self.namespace}:log:{uid}", 0, -1)
        return [tuple(json.loads(r)) for r in rows]


def start_fleet(
    redis_url: str,
    tmp: Path,
    names: list[str] = WORKERS,
    spec: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Fleet]:
    """``names`` as `podium agent` processes, all with ``spec`` (default: the python workers of
    :mod:`engine_agents`) and ``extra_env`` added to their environment; each one's output goes to ``tmp/<name>.log``."""
    namespace = f"e{uuid.uuid4().hex[:8]}"
    config = tmp / "agent.yaml"
    config.write_text(yaml.safe_dump(spec or SPEC))
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    for name in names:
        port = free_port()
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}",
            "PODIUM_AGENT_NAME": name,
            "PODIUM_NAMESPACE": namespace,
            "PODIUM_REDIS_URL": redis_url,
            "PODIUM_REPLICA": f"{name}-0",
            "PODIUM_CONFIG": str(config),
            "PODIUM_HTTP_HOST": "127.0.0.1",
            "PODIUM_HTTP_PORT": str(port),
            "PODIUM_LEASE_SECONDS": "1.5",
            "PODIUM_LOG_FORMAT": "text",
            **(extra_env or {}),
        }
        log = (tmp / f"{name}.log").open("wb")
        procs.append(subprocess.Popen([str(VENV_BIN / "podium"), "agent"], env=env, stdout=log, stderr=log, cwd=ROOT))
        ports.append(port)
    try:
        deadline = time.monotonic() + 60
        for proc, port, name in zip(procs, ports, names, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"agent {name} exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"agent {name} not ready in 60s")
                time.sleep(0.1)
        yield Fleet(namespace, redis_url, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


FAST = Resilience(
    timeout_seconds=5,
    retry=Retry(limit=1, backoff=Backoff(initial_seconds=0.01, max_seconds=0.05)),
    circuit_breaker=CircuitBreaker(failure_threshold=5, recovery_timeout_seconds=60),
)


def info(
    name: str,
    role: str = "worker",
    *,
    priority: str = "important",
    caps: dict[str, float] | None = None,
    retries: int = 1,
    per_task: float = 0.0,
    threshold: int = 5,
) -> AgentInfo:
    from podium.api.agent import Pricing

    resilience = FAST.model_copy(
        update={
            "retry": Retry(limit=retries, backoff=FAST.retry.backoff),
            "circuit_breaker": CircuitBreaker(failure_threshold=threshold, recovery_timeout_seconds=60),
        }
    )
    return AgentInfo(
        name=name,
        role=role,
        capabilities=caps or {},
        priority=priority,
        resilience=resilience,
        pricing=Pricing(per_task=per_task),
    )


class Engine:
    def __init__(self, fleet: Fleet, redis: aioredis.Redis, bus: Bus) -> None:
        self.fleet, self.redis, self.bus = fleet, redis, bus
        self.progress: list[Progress] = []  # what the last run reported, in order

    async def run(
        self, spec: dict[str, Any], agents: list[AgentInfo], teams: tuple[TeamInfo, ...] = (), uid: str | None = None
    ) -> tuple[RunOutcome, str]:
        uid = uid or uuid.uuid4().hex[:12]
        parsed = OrchestrationSpec.model_validate(spec)
        directory = AgentDirectory(agents, teams)
        self.progress = []
        outcome = await run_orchestration(
            self.redis, directory, self.fleet.namespace, "orch", uid, parsed, self.progress.append, bus=self.bus
        )
        return outcome, uid
