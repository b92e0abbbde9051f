"""A real OTLP receiver for tests: the OpenTelemetry Collector built from its Go modules (scripts/build-otelcol.sh),
on 127.0.0.1, writing every span it receives to a file (OTLP JSON lines) that tests read back as spans."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from podium_localcluster.redis_server import free_port
from tests.support.tracing import SpanRow, from_otlp_json
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-otelcol.sh"
CONFIG = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  file:
    path: {path}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"""


def built() -> Path:
    """The collector binary, built on first use (minutes; cached in ~/.cache/podium). A failed build fails the test
    with its output: never a skip, which would hide that the receiver never ran."""
    out = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=1500, check=False)
    if out.returncode != 0:
        pytest.fail(f"scripts/build-otelcol.sh failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


class Collector:
    """One collector process receiving OTLP/HTTP on 127.0.0.1; a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.file = workdir / "traces.jsonl"
        self.config = workdir / "otelcol.yaml"
        self.log = workdir / "otelcol.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT names (the exporter adds /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Collector:
        binary = built()
        self.config.write_text(CONFIG.format(port=self.port, path=self.file))
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(binary), f"--config=file:{self.config}"], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(
            "the collector to listen",
            self._listening,
            timeout=60,
            every=0.2,
            abort=lambda: f"collector exited: {self.log_tail()}" if self.process and self.process.poll() else None,
        )
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def spans(self) -> list[SpanRow]:
        return from_otlp_json(self.file.read_text()) if self.file.exists() else []

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
