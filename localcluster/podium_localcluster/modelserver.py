"""llama.cpp's `llama-server` and the SmolLM2-135M-Instruct model: where they are, and running one on loopback.

`scripts/build-model-server.sh` builds both into ``~/.cache/podium/llama-<version>/`` (run by `make setup`); this
module is the one place that finds them (``PODIUM_LLAMA_SERVER`` and ``PODIUM_MODEL_PATH`` override) for the tests,
the benchmarks and the local cluster's chart values. ``python -m podium_localcluster.modelserver`` prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium_localcluster.redis_server import free_port

# Pinned in scripts/build-model-server.sh as well (a unit test keeps the two equal).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
BUILD_COMMAND = "bash scripts/build-model-server.sh"
BINARY_ENV = "PODIUM_LLAMA_SERVER"
MODEL_ENV = "PODIUM_MODEL_PATH"


class ModelServerMissing(RuntimeError):
    """The binary or the model is not where it should be; the message says how to build them."""


@dataclass(frozen=True)
class ModelServerFiles:
    binary: Path
    model: Path


def cache_dir() -> Path:
    return Path.home() / ".cache" / "podium" / f"llama-{LLAMA_CPP_PYTHON_VERSION}"


def locate(env: Mapping[str, str] | None = None) -> ModelServerFiles:
    """The llama-server binary and the model file, or ModelServerMissing naming each missing one and the fix."""
    env = os.environ if env is None else env
    binary = Path(env.get(BINARY_ENV) or cache_dir() / "bin" / "llama-server")
    model = Path(env.get(MODEL_ENV) or cache_dir() / "models" / MODEL_FILE)
    problems = []
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        problems.append(f"no executable llama-server at {binary} ({BINARY_ENV} overrides)")
    if not model.is_file():
        problems.append(f"no model file at {model} ({MODEL_ENV} overrides)")
    if problems:
        raise ModelServerMissing(
            "; ".join(problems) + f". Build both with `{BUILD_COMMAND}` (part of `make setup`; the first build "
            f"takes ~13 min on 2 cores, then they are cached in {cache_dir()})."
        )
    return ModelServerFiles(binary, model)


def server_argv(
    files: ModelServerFiles,
    host: str,
    port: int,
    *,
    context_size: int = 2048,
    parallel: int = 1,
    threads: int = 1,
    alias: str = MODEL_ALIAS,
) -> list[str]:
    """llama-server's command line. ``context_size`` is per request: the server splits ``-c`` among its slots."""
    return [
        str(files.binary),
        "--model", str(files.model),
        "--alias", alias,
        "--host", host,
        "--port", str(port),
        "--ctx-size", str(context_size * parallel),
        "--parallel", str(parallel),
        "--threads", str(threads),
        "--metrics",
    ]  # fmt: skip


def local_chart_values(files: ModelServerFiles) -> dict[str, Any]:
    """Helm values that run the chart's model server on the local cluster, whose node ignores images.

    The node runs the cached binary as a host process, and the model's directory is a hostPath volume mounted at
    its own path (so no new directory appears on the host, where the node creates missing mount points).
    """
    model_dir = str(files.model.parent)
    return {
        "modelServer": {
            "enabled": True,
            "command": [str(files.binary)],
            "model": {"file": files.model.name, "dir": model_dir, "hostPath": model_dir},
        }
    }


class LlamaServer:
    """One llama-server on 127.0.0.1 and a free port, ready once ``/health`` answers 200; a context manager."""

    def __init__(
        self,
        files: ModelServerFiles,
        *,
        port: int | None = None,
        log_dir: Path | None = None,
        context_size: int = 2048,
        parallel: int = 1,
        threads: int = 1,
    ) -> None:
        self.files = files
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.context_size, self.parallel, self.threads = context_size, parallel, threads
        self._own_dir = log_dir is None
        self.dir = log_dir or Path(tempfile.mkdtemp(prefix="podium-llama-"))
        self.log = self.dir / "llama-server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None  # start to the first 200 on /health

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an Agent's ``backend.llm.baseURL`` takes."""
        return f"{self.url}/v1"

    def start(self, timeout: float = 120.0) -> LlamaServer:
        argv = server_argv(
            self.files,
            self.host,
            self.port,
            context_size=self.context_size,
            parallel=self.parallel,
            threads=self.threads,
        )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"llama-server exited with {code} before it was ready: {self.log_tail()}")
            if self.healthy():
                self.ready_seconds = time.monotonic() - started
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"llama-server on port {self.port} not healthy within {timeout}s: {self.log_tail()}")

    def healthy(self) -> bool:
        """True once the model is loaded (``/health`` answers 503 while loading)."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return f"(no log at {self.log})"

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m podium_localcluster.modelserver", description=__doc__)
    p.add_argument("what", choices=["locate", "helm-values"], help="the paths as JSON, or the local chart values")
    args = p.parse_args(argv)
    try:
        files = locate()
    except ModelServerMissing as e:
        print(f"model server: {e}", file=sys.stderr)
        return 1
    out = {"binary": str(files.binary), "model": str(files.model)} if args.what == "locate" else None
    print(json.dumps(out or local_chart_values(files), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
