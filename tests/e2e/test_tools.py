"""Tools over MCP on the local cluster, end to end: Podium installed with Helm and its model server (llama-server,
SmolLM2-135M), the examples/tools Agent whose pods start the reference MCP time server (PyPI `mcp-server-time`)
over stdio, a run in which the real model calls the tool and answers with what it said, the call in `podium run
history`, and a run whose maxTokens stops the tool loop."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ClusterHandle
from .helpers import ROOT, Release, diagnose, get, installed_with_model_server, wait_for

EXAMPLE = ROOT / "examples" / "tools" / "clock.yaml"
PODIUM = Path(sys.executable).parent / "podium"


@pytest.fixture(scope="module")
def release(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    with installed_with_model_server(cluster, "tools", tmp_path_factory.mktemp("tools")) as rel:
        yield rel


def example(release: Release) -> list[dict[str, Any]]:
    """examples/tools/clock.yaml, pointed at this release's model server instead of release `podium`'s."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    agent = next(d for d in docs if d["kind"] == "Agent")
    agent["spec"]["backend"]["llm"]["baseURL"] = f"http://{release.name}-model-server.{release.system}.svc:8080/v1"
    return docs


def apply(cluster: ClusterHandle, namespace: str, *docs: dict[str, Any]) -> None:
    out = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    assert out.returncode == 0, out.stderr


def finished(cluster: ClusterHandle, release: Release, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = get(cluster, "orchestration", name, "-n", release.namespace) or {}
        status: dict[str, Any] = found.get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    return wait_for(f"orchestration {name} to finish", done, timeout=300, detail=lambda: diagnose(cluster, release))


def history(cluster: ClusterHandle, release: Release, name: str) -> str:
    """`podium run history NAME`, as a user runs it, against the release's Redis (its Service, on loopback)."""
    service = get(cluster, "service", f"{release.name}-redis", "-n", release.system)
    secret = get(cluster, "secret", f"{release.name}-redis", "-n", release.system)
    assert service and secret
    password = base64.b64decode(secret["data"]["password"]).decode()
    url = f"redis://:{password}@{service['spec']['clusterIP']}:6379/0"
    out = subprocess.run(
        [str(PODIUM), "run", "-n", release.namespace, "--redis-url", url, "history", name],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_model_calls_the_mcp_server_in_its_pod_and_answers_with_what_it_said(
    cluster: ClusterHandle, release: Release
) -> None:
    before = datetime.now(UTC).date().isoformat()
    apply(cluster, release.namespace, *example(release))
    status = finished(cluster, release, "what-day")
    after = datetime.now(UTC).date().isoformat()
    assert status["phase"] == "Succeeded", f"{status}\n{diagnose(cluster, release)}"

    shown = history(cluster, release, "what-day")
    lines = shown.splitlines()
    calls = [line for line in lines if " clock tool.call time/get_current_time(" in line]
    assert calls, shown
    assert "[ok, step stage-ask, attempt 1" in calls[0] and '{"timezone": "UTC"}' in calls[0]
    told = calls[0].split(" -> ", 1)[1]
    date = json.loads(json.loads(told))["datetime"][:10]  # the line shows the result as a JSON string
    assert date in (before, after)
    assert status["result"] == {"date": date}  # the answer is what the tool said, not the model's own guess
    answer = next(i for i, line in enumerate(lines) if " clock execute stage-ask [ok" in line)
    assert lines.index(calls[0]) < answer  # the call, then the answer built on it
    pod = get(cluster, "pods", "-n", release.namespace, "-l", "podium.dev/agent=clock")
    assert pod and pod["items"], "no agent pod"
    assert status.get("tokens", 0) > 0


def test_a_token_budget_stops_the_tool_loop_and_the_run_says_so(cluster: ClusterHandle, release: Release) -> None:
    docs = example(release)
    run = next(d for d in docs if d["kind"] == "Orchestration")
    run["metadata"]["name"] = "what-day-tight"
    run["spec"]["limits"]["maxTokens"] = 200  # less than the loop's first round: no second round is paid for
    apply(cluster, release.namespace, *docs)
    status = finished(cluster, release, "what-day-tight")
    assert status["phase"] == "Failed", status
    assert "budget exceeded: maxTokens" in status.get("message", ""), status
    shown = history(cluster, release, "what-day-tight")
    # The loop's one paid round asked for the tool, which ran; the next round was not paid for.
    assert shown.count(" clock tool.call time/get_current_time(") == 1, shown
