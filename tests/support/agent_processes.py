"""Real `podium agent` replicas for the reliability tests: start, kill -9 and restart them under the same name (as
Kubernetes restarts a container in its pod), and count from their logs how often each task was started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from podium_localcluster.redis_server import free_port
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WORK = {"python": {"entrypoint": "tests.support.chaos_agents:work"}}


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class AgentFleet:
    """Replicas of one agent. Each incarnation of a replica logs to a file of its own."""

    redis_url: str
    namespace: str
    agent: str
    directory: Path
    concurrency: int = 4
    lease_seconds: float = 1.0
    env: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] | None = None  # the Agent spec; default: role worker, backend chaos_agents.work
    replicas: dict[str, Replica] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    def start(self, name: str, *, wait: bool = True) -> Replica:
        config = self.directory / f"{self.agent}.yaml"
        spec = self.spec or {"role": "worker", "backend": WORK, "concurrency": self.concurrency}
        config.write_text(yaml.safe_dump(spec))
        log = self.directory / f"{name}.{len(self.logs)}.log"
        self.logs.append(log)
        port = free_port()
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "PODIUM_AGENT_NAME": self.agent,
            "PODIUM_NAMESPACE": self.namespace,
            "PODIUM_REDIS_URL": self.redis_url,
            "PODIUM_REPLICA": name,
            "PODIUM_CONFIG": str(config),
            "PODIUM_HTTP_HOST": "127.0.0.1",
            "PODIUM_HTTP_PORT": str(port),
            "PODIUM_LEASE_SECONDS": str(self.lease_seconds),
            "PODIUM_GRACE_SECONDS": "5",
            **self.env,
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(VENV_BIN / "podium"), "agent"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        replica = Replica(name, port, proc, log)
        self.replicas[name] = replica
        if wait:
            self.wait_ready(name)
        return replica

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        replica = self.replicas[name]

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{replica.port}/readyz", timeout=1) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        def exited() -> str | None:
            code = replica.proc.poll()
            return None if code is None else f"replica {name} exited with {code}"

        wait_for(
            f"replica {name} ready", ready, timeout, 0.05, abort=exited, detail=lambda: replica.log.read_text()[-3000:]
        )

    def alive(self, name: str) -> bool:
        return self.replicas[name].proc.poll() is None

    def kill(self, name: str) -> None:
        """kill -9: nothing of the replica runs after this, nothing is handed back."""
        proc = self.replicas[name].proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def restart(self, name: str, *, wait: bool = False) -> Replica:
        """A new incarnation under the same replica name, as a container restarted in its pod."""
        if self.alive(name):
            self.kill(name)
        return self.start(name, wait=wait)

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in self.replicas.values():
            try:
                replica.proc.wait(15)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait()

    def records(self) -> list[dict[str, Any]]:
        out = []
        for log in self.logs:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a line cut by kill -9
        return out

    def starts(self) -> Counter[str]:
        """How many times each task id was handed to the backend, over every incarnation."""
        return Counter(r["task_id"] for r in self.records() if r.get("msg") == "task started")

    def stored(self) -> set[str]:
        """Task ids whose result a replica stored (logged once the completion returned)."""
        return {
            r["task_id"]
            for r in self.records()
            if r.get("msg") == "task done" or r.get("msg", "").startswith("task failed")
        }
