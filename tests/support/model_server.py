"""A real llama.cpp ``llama-server`` with SmolLM2-135M-Instruct on loopback, for every test that concerns models.

``scripts/build-model-server.sh`` builds the binary and fetches the model into ``~/.cache/podium/llama-<version>``
(``PODIUM_LLAMA_DIR`` overrides the place). The server speaks OpenAI's ``/v1/chat/completions`` with
``response_format`` (json_schema, json_object), streaming with usage, and ``seed``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.localcluster.redis_server import free_port

LLAMA_VERSION = "0.3.36"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
# Two slots of 2048 tokens each: strategies send parallel tasks, and a slot must hold prompt plus answer.
PARALLEL = 2
CONTEXT_PER_SLOT = 2048


def llama_dir() -> Path:
    default = Path.home() / ".cache" / "podium" / f"llama-{LLAMA_VERSION}"
    return Path(os.environ.get("PODIUM_LLAMA_DIR", default))


class ModelServer:
    """One llama-server process; ``url`` is the OpenAI base URL (``.../v1``) agents use as ``baseURL``."""

    def __init__(self, log_path: Path, *, threads: int = 2) -> None:
        self.binary = llama_dir() / "bin" / "llama-server"
        self.model = llama_dir() / "models" / MODEL_FILE
        self.port = free_port()
        self.log_path = log_path
        self.threads = threads
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def start(self, timeout: float = 120.0) -> ModelServer:
        for path, what in ((self.binary, "llama-server"), (self.model, "the model")):
            if not path.exists():
                raise RuntimeError(f"{what} is missing at {path}: run scripts/build-model-server.sh (or `make setup`)")
        args = [
            str(self.binary),
            "-m", str(self.model),
            "--alias", MODEL_NAME,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-c", str(PARALLEL * CONTEXT_PER_SLOT),
            "-np", str(PARALLEL),
            "-t", str(self.threads),
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server not healthy within {timeout:g}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """One llama-server for the session. A machine without the build fails these tests, naming the fix."""
    log = tmp_path_factory.mktemp("model-server") / "llama-server.log"
    try:
        server = ModelServer(log).start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
