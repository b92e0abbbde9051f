"""A real Prometheus (Debian's `prometheus` binary) on 127.0.0.1, scraping what the tests point it at.

No test functions here. The process is started by the test with a generated config and a temporary storage
directory; it never touches /etc/prometheus's service or its data. :func:`agent_pods_job` discovers agent pods the
way the chart's values describe for a Prometheus without the Prometheus Operator: pods kept by their
``prometheus.io/scrape`` annotation, scraped at their ``prometheus.io/port``.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from podium_localcluster.redis_server import free_port
from tests.support.wait import wait_for

if TYPE_CHECKING:
    from .conftest import ClusterHandle
    from .helpers import Operator


def operator_job(port: int, job: str = "podium-metrics") -> dict[str, Any]:
    """The operator's own /metrics (a local process in tests/cluster), under the job its ServiceMonitor gives it."""
    return {"job_name": job, "honor_labels": True, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


def agent_pods_job(targets_file: Path, job: str = "podium-agents") -> dict[str, Any]:
    """Agent pods listed in ``targets_file`` (see :func:`write_pod_targets`), re-read whenever it changes."""
    # The agents label their series with their own namespace: keep it (as the chart's PodMonitor does).
    return {"job_name": job, "honor_labels": True, "file_sd_configs": [{"files": [str(targets_file)],
                                                                          "refresh_interval": "1s"}]}  # fmt: skip


def pod_targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a Prometheus scraping pods by their annotations scrapes (pure): running pods with
    ``prometheus.io/scrape: "true"``, at their IP and ``prometheus.io/port``, labelled with namespace and pod."""
    out = []
    for pod in pods:
        notes = pod["metadata"].get("annotations") or {}
        ip, port = (pod.get("status") or {}).get("podIP"), notes.get("prometheus.io/port")
        if notes.get("prometheus.io/scrape") != "true" or pod["status"].get("phase") != "Running" or not ip or not port:
            continue
        labels = {"namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"]}
        out.append({"targets": [f"{ip}:{port}"], "labels": labels})
    return out


def write_pod_targets(cluster: ClusterHandle, namespace: str, targets_file: Path) -> int:
    """Discover the namespace's scrapeable pods through the API server into a file_sd file; how many there are.

    Debian's prometheus is built without Kubernetes service discovery, so the test does the discovery (the same
    annotations, the same rules) and hands Prometheus the result.
    """
    out = cluster.kubectl("get", "pods", "-n", namespace, "-o", "json")
    assert out.returncode == 0, out.stderr
    targets = pod_targets(json.loads(out.stdout)["items"])
    tmp = targets_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(targets))
    tmp.replace(targets_file)  # atomically: Prometheus never reads half a file
    return len(targets)


class Prometheus:
    def __init__(self, scrape_configs: list[dict[str, Any]], interval: str = "1s") -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: run scripts/setup.sh (Debian package prometheus)")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="podium-prometheus-"))
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval,
                             "scrape_timeout": interval}, "scrape_configs": scrape_configs}  # fmt: skip
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.dir / "prometheus.log").read_text(errors="replace")[-4000:]

    def start(self) -> Prometheus:
        args = [
            self.binary,
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
        ]
        with (self.dir / "prometheus.log").open("wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"prometheus exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for("prometheus to be ready", ready, timeout=60)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series (each ``{"metric": {...}, "value": [t, "v"]}``)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def up(self, job: str) -> list[dict[str, Any]]:
        """The job's targets whose last scrape worked."""
        return [t for t in self.targets() if t["labels"].get("job") == job and t["health"] == "up"]


def running_prometheus(
    cluster: ClusterHandle, namespace: str, operator: Operator, pods: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """The body of a module's Prometheus fixture (`yield from` it): scraping ``operator`` and the ``pods`` agent pods
    of ``namespace``, each scraped once before it is yielded (so counters start from their zero); stopped after."""
    targets = tmp_path_factory.mktemp("prometheus-sd") / "agents.json"
    found = write_pod_targets(cluster, namespace, targets)
    assert found == pods, f"{found} scrapeable agent pods in {namespace}, expected {pods}"
    server = Prometheus([operator_job(operator.metrics_port), agent_pods_job(targets)]).start()
    try:
        wait_for(
            "prometheus to scrape the operator and every agent pod",
            lambda: len(server.up("podium-metrics")) == 1 and len(server.up("podium-agents")) == pods,
            timeout=60,
        )
        yield server
    except AssertionError:
        print(json.dumps(server.targets(), indent=1)[-4000:], server.log())
        raise
    finally:
        server.stop()
