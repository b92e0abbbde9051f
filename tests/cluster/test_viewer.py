"""`podium ui` on the local cluster, looked at in headless Chromium.

The example agents with deterministic demo backends (tests/data/deterministic/) run as pods; one Orchestration
of each strategy runs to Succeeded under `podium operator`; `podium ui` serves the namespace, reading Redis as a
user with the viewer's read-only ACL. The API answers, and the page draws each run's picture, timeline and
history. Screenshots go to $PODIUM_VIEWER_SCREENSHOTS (docs/viewer to refresh the ones kept in the docs), else to a
temporary folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from podium.viewer.source import ACL_RULES
from podium_localcluster.redis_server import RedisServer, free_port
from tests.support.examples import STRATEGY_FILES
from tests.support.wait import wait_for

from .browser import Chromium, Page
from .conftest import ClusterHandle
from .helpers import PODIUM, Operator, require_ready_node

ROOT = Path(__file__).resolve().parents[2]
# The examples with the deterministic demo agents (examples/ itself runs language-model agents).
EXAMPLES = ROOT / "tests" / "data" / "deterministic"
FILES = STRATEGY_FILES
PICTURES = {"pipeline": "stages", "hierarchical": "teams", "swarm": "generations", "eventDriven": "dag",
            "centralCommand": "plan", "peerToPeer": "rounds", "market": "auctions"}  # fmt: skip


def example(strategy: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / FILES[strategy]).read_text())
    return doc


@pytest.fixture(scope="module")
def examples_fleet(cluster: ClusterHandle, ns: str, operator: Operator) -> None:
    """The examples' agents and teams, every agent Ready."""
    require_ready_node(cluster)
    out = cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "agents.yaml"), "-f", str(EXAMPLES / "teams.yaml"))
    assert out.returncode == 0, out.stderr
    ready = cluster.kubectl("wait", "-n", ns, "agent", "--all", "--for=condition=Ready", "--timeout=240s", timeout=260)
    assert ready.returncode == 0, ready.stderr + cluster.kubectl("get", "-n", ns, "agents,pods").stdout


@pytest.fixture(scope="module")
def runs(cluster: ClusterHandle, ns: str, examples_fleet: None) -> dict[str, str]:
    """strategy -> name of its example Orchestration, each run to Succeeded."""
    names = {s: example(s)["metadata"]["name"] for s in FILES}
    out = cluster.kubectl("apply", "-n", ns, *(f"-f={EXAMPLES / f}" for f in FILES.values()))
    assert out.returncode == 0, out.stderr

    def phases() -> dict[str, str] | None:
        got = cluster.kubectl("get", "-n", ns, "orchestrations", "-o", "json")
        items = json.loads(got.stdout)["items"] if got.returncode == 0 else []
        found = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}
        return found if all(found.get(n) in ("Succeeded", "Failed") for n in names.values()) else None

    finished = wait_for("the seven example runs to finish", phases, timeout=240, every=1.0)
    assert all(finished[n] == "Succeeded" for n in names.values()), finished
    return names


@pytest.fixture(scope="module")
def viewer_login(redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """A Redis user with exactly the viewer's ACL (what the chart gives the viewer pod)."""
    admin = redis.Redis(host=redis_server.host, port=redis_server.port)
    user, password = f"viewer-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", *ACL_RULES)
    yield user, password
    admin.execute_command("ACL", "DELUSER", user)
    admin.close()


@pytest.fixture(scope="module")
def viewer(
    cluster: ClusterHandle,
    ns: str,
    redis_server: RedisServer,
    viewer_login: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """`podium ui -n <ns>` as a process; its base URL."""
    port = free_port()
    env = {
        **cluster.env,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PODIUM_REDIS_URL": redis_server.url,
        "PODIUM_REDIS_USERNAME": viewer_login[0],
        "PODIUM_REDIS_PASSWORD": viewer_login[1],
    }
    log = tmp_path_factory.mktemp("viewer") / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([PODIUM, "ui", "-n", ns, f"--port={port}"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}/"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"podium ui exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(base + "healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for("podium ui to serve", healthy, timeout=30)
    yield base
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log.read_text()  # a pod's stop is a clean exit


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    browser = Chromium().start()
    yield browser
    browser.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("PODIUM_VIEWER_SCREENSHOTS")
    if not where:
        return tmp_path_factory.mktemp("screenshots")
    folder = ROOT / where
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def get(url: str, method: str = "GET") -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_api_lists_every_run_and_answers_errors_in_json(viewer: str, ns: str, runs: dict[str, str]) -> None:
    status, body = get(viewer + "api/runs")
    assert status == 200 and body["namespace"] == ns
    listed = {r["name"]: r for r in body["runs"]}
    assert set(runs.values()) <= set(listed)
    assert all(listed[n]["phase"] == "Succeeded" and listed[n]["strategy"] == s for s, n in runs.items())

    status, body = get(viewer + "api/runs/no-such-run")
    assert status == 404 and "no-such-run" in body["error"] and ns in body["error"]
    status, body = get(viewer + "api/runs?namespace=kube-system")
    assert status == 404 and f"it serves {ns}" in body["error"]
    status, body = get(viewer + "api/runs", method="POST")
    assert status == 405 and "read-only" in body["error"]
    status, body = get(viewer + f"api/runs/{runs['pipeline']}", method="DELETE")
    assert status == 405


@pytest.mark.parametrize("strategy", list(FILES))
def test_the_api_has_the_whole_of_each_finished_run(viewer: str, runs: dict[str, str], strategy: str) -> None:
    status, body = get(viewer + f"api/runs/{runs[strategy]}")
    assert status == 200, body
    # The read-only ACL user read everything: no part is missing.
    assert body["warnings"] == [], body["warnings"]
    assert body["picture"]["kind"] == PICTURES[strategy]
    assert body["steps"] and all(s["state"] == "Succeeded" for s in body["steps"]), body["steps"]
    bars = [b for lane in body["timeline"]["lanes"] for b in lane["bars"]]
    assert len(bars) == sum(r["attempts"] for r in body["spend"]) >= len(body["steps"])
    assert all(b["state"] == "ok" and b["start"] <= b["end"] for b in bars)
    assert round(sum(r["cost"] for r in body["spend"]), 6) == round(body["run"]["cost"], 6)
    texts = [i["text"] for i in body["history"]]
    assert any("run.started" in t for t in texts) and any("Normal Succeeded" in t for t in texts)


async def open_run(page: Page, viewer: str, ns: str, name: str) -> None:
    await page.goto(f"{viewer}#/{ns}/{name}")
    drawn = "document.body.dataset.view === 'run' && document.body.dataset.ready === '1'"
    await page.wait_for(f"the page of {name}", f"{drawn} && document.title.includes({json.dumps(name)})")


async def test_the_runs_page_lists_the_seven_runs(
    chromium: Chromium, viewer: str, ns: str, runs: dict[str, str], shots: Path
) -> None:
    async with chromium.page() as page:
        await page.goto(viewer)
        await page.wait_for(
            "the runs list", "document.body.dataset.view === 'runs' && document.body.dataset.ready === '1'"
        )
        assert await page.evaluate("location.hash") == f"#/{ns}"  # the namespace it serves, chosen for us
        rows = await page.evaluate(
            "[...document.querySelectorAll('#runs tbody tr')].map(r => [r.dataset.run, r.dataset.phase])"
        )
        assert {tuple(r) for r in rows} >= {(n, "Succeeded") for n in runs.values()}
        (shots / "runs.png").write_bytes(await page.screenshot())
        # A click on a name opens its page.
        await page.evaluate(f"document.querySelector('#runs a[href$=\"/{runs['swarm']}\"]').click()")
        await page.wait_for("the swarm run's page", f"document.title.includes({json.dumps(runs['swarm'])})")
        assert page.errors == []


# What each picture must show for the example run, as counts of its drawn parts.
async def picture_parts(page: Page, strategy: str, body: dict[str, Any]) -> None:
    p = body["picture"]
    if strategy == "pipeline":
        assert await page.count("#picture .step[data-state=Succeeded]") == len(p["stages"]) == 2
    elif strategy == "hierarchical":
        assert await page.count("#picture .team") == len(p["teams"]) == 1
        tasks = len(p["teams"][0]["tasks"])
        assert tasks >= 1 and await page.count("#picture .team [data-task]") == tasks
        # plan, then research, analysis and synthesis per task, then integrate
        assert await page.count("#picture .step[data-state=Succeeded]") == 2 + 3 * tasks
    elif strategy == "swarm":
        assert await page.count("#generations tbody tr") == len(p["generations"]) >= 1
        assert await page.count("#picture circle.dot") == sum(len(g["scores"]) for g in p["generations"]) >= 1
        assert await page.count("#picture polyline.best") == 1
    elif strategy == "eventDriven":
        assert await page.count("#picture g.node[data-state=Succeeded]") == len(p["nodes"]) == 3
        assert await page.count("#picture path.edge") == len(p["edges"]) == 2
    elif strategy == "centralCommand":
        assert await page.count("#plan tbody tr") == len(p["tasks"]) >= 1
        assert await page.count("#plan .badge.Succeeded") == len(p["tasks"])
    elif strategy == "peerToPeer":
        assert await page.count("#picture table.matrix") == len(p["rounds"]) >= 1
        assert any("applied" in t for t in await page.texts("#picture td.applied"))
    elif strategy == "market":
        assert await page.count("#picture .auction") == len(p["auctions"]) == 2
        assert await page.count("#picture tr.winner") == 2


@pytest.mark.parametrize("strategy", list(FILES))
async def test_the_page_draws_each_finished_strategy_run(
    chromium: Chromium, viewer: str, ns: str, runs: dict[str, str], shots: Path, strategy: str
) -> None:
    name = runs[strategy]
    _, body = get(viewer + f"api/runs/{name}")
    async with chromium.page() as page:
        await open_run(page, viewer, ns, name)
        assert await page.evaluate("document.querySelector('#picture').dataset.kind") == PICTURES[strategy]
        await picture_parts(page, strategy, body)
        bars = sum(len(lane["bars"]) for lane in body["timeline"]["lanes"])
        assert await page.count("#timeline rect.bar.ok") == bars
        assert await page.count("#timeline g.lane") == len(body["timeline"]["lanes"])
        assert await page.count("#history tr") == len(body["history"])
        assert await page.count("#spend tbody tr") == len(body["spend"]) + 1  # the agents, and the run's total
        assert await page.evaluate("document.querySelector('#run').dataset.phase") == "Succeeded"
        assert await page.evaluate("document.getElementById('error').hidden") is True
        png = await page.screenshot()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000
        (shots / f"{strategy}.png").write_bytes(png)
        assert page.errors == []


def never_valid() -> dict[str, Any]:
    """A pipeline whose one stage always answers, and whose answer never passes validation: two attempts, Failed."""
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Orchestration",
        "metadata": {"name": "never-valid"},
        "spec": {
            "strategy": "pipeline",
            "team": "research",
            "input": {"text": "anything"},
            "pipeline": {"stages": [{"name": "write", "agent": "synthesizer", "retries": 1,
                                     "validate": {"jsonSchema": {"type": "string"}}}]},
            "limits": {"timeoutSeconds": 60},
        },
    }  # fmt: skip


async def test_a_failed_run_shows_why_and_each_rejected_attempt(
    cluster: ClusterHandle, chromium: Chromium, viewer: str, ns: str, runs: dict[str, str], shots: Path
) -> None:
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(never_valid()))
    assert out.returncode == 0, out.stderr
    wait_for("never-valid to fail", lambda: get(viewer + "api/runs/never-valid")[1]["run"]["phase"] == "Failed")
    _, body = get(viewer + "api/runs/never-valid")
    message = body["run"]["message"]
    assert body["run"]["reason"] == "TaskFailed" and message.startswith("stage 'write' failed: synthesizer: ")
    assert "does not honour the task's output schema: the answer must be string" in message
    bars = [b for lane in body["timeline"]["lanes"] for b in lane["bars"]]
    assert [(b["agent"], b["attempt"], b["state"]) for b in bars] == [("synthesizer", 1, "rejected"),
                                                                      ("synthesizer", 2, "rejected")]  # fmt: skip
    assert body["spend"][0]["failures"] == 2
    async with chromium.page() as page:
        await open_run(page, viewer, ns, "never-valid")
        assert await page.evaluate("document.querySelector('#run').dataset.phase") == "Failed"
        assert await page.count("#timeline rect.bar.rejected") == 2
        assert await page.count("#picture .step[data-state=Failed]") == 1
        assert any("the answer must be string" in t for t in await page.texts("#picture .step .err"))
        assert "TaskFailed" in (await page.texts("#run .message"))[0]
        (shots / "failed.png").write_bytes(await page.screenshot())
        assert page.errors == []


async def test_the_page_follows_a_run_while_it_goes(
    cluster: ClusterHandle, chromium: Chromium, viewer: str, ns: str, runs: dict[str, str]
) -> None:
    doc = example("pipeline")
    doc["metadata"]["name"] = "live-pipeline"
    doc["spec"]["suspend"] = True
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(doc))
    assert out.returncode == 0, out.stderr
    async with chromium.page() as page:
        await open_run(page, viewer, ns, "live-pipeline")
        await page.wait_for("the suspended run", "document.querySelector('#run').dataset.phase === 'Suspended'")
        assert await page.evaluate("document.getElementById('live').textContent") == "live"
        await page.evaluate("window.stillTheSamePage = true")
        patched = cluster.kubectl("patch", "-n", ns, "orchestration", "live-pipeline", "--type=merge",
                                  "-p", '{"spec": {"suspend": false}}')  # fmt: skip
        assert patched.returncode == 0, patched.stderr
        # No reload: the page polls and redraws itself, then stops once the run finished.
        await page.wait_for(
            "the page to show the run Succeeded",
            "document.querySelector('#run').dataset.phase === 'Succeeded' && window.stillTheSamePage === true",
            within=90,
        )
        assert await page.count("#picture .step[data-state=Succeeded]") == 2
        assert await page.evaluate("document.getElementById('live').textContent") == "succeeded"
        assert page.errors == []
