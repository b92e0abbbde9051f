"""`podium operator` and `podium agent` refuse a tracing setting they cannot honour, at start, naming it: a process
that would run untraced while its operator believes it traces is worse than one that does not start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PODIUM = str(Path(sys.executable).parent / "podium")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([PODIUM, *args], env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


def test_the_operator_refuses_an_exporter_it_does_not_have() -> None:
    out = run(["operator", "--standalone"], {"OTEL_TRACES_EXPORTER": "zipkin", "KUBECONFIG": "/nonexistent"})
    assert out.returncode == 2
    assert "podium operator: tracing: OTEL_TRACES_EXPORTER='zipkin': unknown exporter 'zipkin'" in out.stderr


def test_the_agent_refuses_a_protocol_it_cannot_speak(tmp_path: Path) -> None:
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"role": "echo", "backend": {"command": {"args": ["cat"]}}}))
    env = {
        "PODIUM_AGENT_NAME": "echo",
        "PODIUM_NAMESPACE": "ns",
        "PODIUM_REDIS_URL": "redis://127.0.0.1:1/0",
        "PODIUM_CONFIG": str(config),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    }
    out = run(["agent"], env)
    assert out.returncode == 2
    assert "podium agent: tracing: OTEL_EXPORTER_OTLP_PROTOCOL='http/json'" in out.stderr
