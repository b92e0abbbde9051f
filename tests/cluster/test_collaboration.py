"""The collaboration examples on the local cluster, applied with kubectl and read as a user would: the blackboard
(examples/blackboard.yaml) and an approval that survives the operator being killed (examples/approval.yaml)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from podium.dataplane.keys import AgentKeys
from podium_localcluster.redis_server import RedisServer
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import PODIUM, Operator, condition, require_ready_node
from .orchestration_support import finished, status

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def apply_example(cluster: ClusterHandle, ns: str, name: str) -> list[str]:
    """Apply an example file; wait for its Agents to be Ready; return their names."""
    out = cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / name))
    assert out.returncode == 0, out.stderr
    agents = [line.split("/")[1].split()[0] for line in out.stdout.splitlines() if line.startswith("agent.")]

    def ready() -> bool:
        got = cluster.kubectl("get", "-n", ns, "agents", *agents, "-o", "json")
        items = json.loads(got.stdout)["items"] if got.returncode == 0 else []
        return len(items) == len(agents) and all((i.get("status") or {}).get("ready") == "1/1" for i in items)

    wait_for(f"{', '.join(agents)} Ready", ready, timeout=240, every=1.0)
    return agents


def podium_run(
    cluster: ClusterHandle, redis_server: RedisServer, ns: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "KUBECONFIG": str(cluster.kubeconfig), "PODIUM_REDIS_URL": redis_server.url}
    return subprocess.run(
        [PODIUM, "run", "-n", ns, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def run_events(cluster: ClusterHandle, ns: str, name: str) -> list[str]:
    out = cluster.kubectl("get", "events", "-n", ns, f"--field-selector=involvedObject.name={name}", "-o", "json")
    items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    return [e["reason"] for e in items if e.get("involvedObject", {}).get("kind") == "Orchestration"]


def waiting_gauge(op: Operator, ns: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith("podium_orchestration_approvals_waiting{") and f'namespace="{ns}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def ready_node(cluster: ClusterHandle) -> None:
    require_ready_node(cluster)


def test_blackboard_example_merges_concurrent_writes_and_routes_messages(
    cluster: ClusterHandle, ns: str, ready_node: None, operator: Operator, redis_server: RedisServer
) -> None:
    apply_example(cluster, ns, "blackboard.yaml")
    st = finished(cluster, ns, "blackboard", timeout=180)
    assert st["phase"] == "Succeeded", st.get("message")
    edit = st["result"]["edit"]
    assert edit["sections"] == 2 and "Intro:" in edit["article"] and "Details:" in edit["article"]
    assert "outline.ready from board-outliner" in edit["heard"]
    shown = podium_run(cluster, redis_server, ns, "state", "blackboard")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert {"draft", "outline", "progress"} <= set(rows), shown.stdout
    assert rows["outline"].split()[1:3] == ["1", "board-outliner"], "written by the engine for the outliner's answer"
    draft = json.loads(podium_run(cluster, redis_server, ns, "state", "blackboard", "--key", "draft").stdout)
    assert {"intro", "details"} <= set(draft), "merge kept both writers' sections"
    audit = podium_run(cluster, redis_server, ns, "state", "blackboard", "--audit")
    assert audit.returncode == 0 and "draft  merge: merged; conflicting fields lastSection" in audit.stdout, audit
    progress = json.loads(podium_run(cluster, redis_server, ns, "state", "blackboard", "--key", "progress").stdout)
    assert progress == {"done": ["details", "intro"], "of": 2}, "the tracker's message tasks counted both sections"
    tracker = podium_run(cluster, redis_server, ns, "history", "blackboard", "--agent", "board-tracker")
    assert tracker.returncode == 0, tracker.stderr
    assert "section.done" in tracker.stdout and "board-tracker message message-board-tracker-" in tracker.stdout
    assert "board-outliner" not in tracker.stdout, "the tracker's history is its own"


def test_an_approval_wait_survives_a_killed_operator_and_continues_on_approve(
    cluster: ClusterHandle,
    ns: str,
    ready_node: None,
    operator: Operator,
    admin: redis.Redis,
    redis_server: RedisServer,
) -> None:
    apply_example(cluster, ns, "approval.yaml")
    waiting: dict[str, Any] = wait_for(
        "release AwaitingApproval",
        lambda: (s := status(cluster, ns, "release")).get("phase") == "AwaitingApproval" and s,
        timeout=120,
    )
    cond = condition(waiting, "AwaitingApproval")
    assert cond["status"] == "True" and cond["reason"] == "ApprovalRequired"
    assert "podium run approve release --step stage-draft" in cond["message"]
    (approval,) = waiting["approvals"]
    assert approval["step"] == "stage-draft" and approval["state"] == "Waiting" and "1.4.0" in approval["summary"]
    assert "ApprovalRequested" in wait_for("ApprovalRequested", lambda: run_events(cluster, ns, "release"))
    assert wait_for("the waiting gauge", lambda: waiting_gauge(operator, ns)) == 1.0

    operator.kill()
    operator.start()
    wait_for("Continued event", lambda: "Continued" in run_events(cluster, ns, "release"), timeout=60)
    assert wait_for("the waiting gauge of the new process", lambda: waiting_gauge(operator, ns), timeout=30) == 1.0
    after = status(cluster, ns, "release")
    assert after["phase"] == "AwaitingApproval" and after["approvals"][0]["requestedAt"] == approval["requestedAt"]
    assert [t["name"] for t in after["tasks"]] == ["stage-draft"], "publish waits for the decision"

    decided = podium_run(cluster, redis_server, ns, "approve", "release", "--comment", "ship it", "--by", "alice")
    assert decided.returncode == 0 and "stage-draft approved" in decided.stdout, decided.stderr
    st = finished(cluster, ns, "release", timeout=120)
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["result"]["published"] == "1.4.0"
    (done,) = st["approvals"]
    assert (done["state"], done["decidedBy"], done["comment"]) == ("Approved", "alice", "ship it")
    assert condition(st, "AwaitingApproval")["status"] == "False"
    assert "Approved" in wait_for("Approved event", lambda: run_events(cluster, ns, "release"))
    uid = json.loads(cluster.kubectl("get", "-n", ns, "orch", "release", "-o", "json").stdout)["metadata"]["uid"]
    results = admin.xrange(AgentKeys(ns, "release-drafter").results)
    drafts = [f for _, f in results if f["i"].startswith(f"{uid}:stage-draft")]
    assert len(drafts) == 1, "the draft ran once: the restarted operator replayed it from the journal"
    assert waiting_gauge(operator, ns) == 0.0
