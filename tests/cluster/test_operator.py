"""`podium operator` as a process against the local cluster: Agents into workloads, Teams, restarts, bad specs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from podium.localcluster.redis_server import RedisServer, free_port

from .conftest import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
PODIUM = str(Path(sys.executable).parent / "podium")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Operator:
    """One `podium operator --standalone` process watching one namespace; restartable."""

    def __init__(self, cluster: ClusterHandle, namespace: str, redis_url: str, log: Path) -> None:
        self.cluster, self.namespace, self.redis_url, self.log = cluster, namespace, redis_url, log
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **self.cluster.env,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "PODIUM_REDIS_URL": self.redis_url,
            "PODIUM_HEALTH_INTERVAL_SECONDS": "2",
            "PODIUM_HEARTBEAT_LEASE_SECONDS": "5",
            "PODIUM_STARTUP_GRACE_SECONDS": "15",
            "PODIUM_RESYNC_SECONDS": "10",
            "PODIUM_AGENT_IMAGE": "podium-agent:dev",
        }
        args = [PODIUM, "operator", "--standalone", f"--namespace={self.namespace}"]
        args += [f"--metrics-port={self.metrics_port}", "--metrics-host=127.0.0.1", "--log-format=text"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="module")
def crds(cluster: ClusterHandle) -> None:
    applied = cluster.kubectl("apply", "--server-side", "--force-conflicts", *(f"-f={p}" for p in CRDS))
    assert applied.returncode == 0, applied.stderr
    ok = cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/agents.podium.dev")
    assert ok.returncode == 0, ok.stderr


@pytest.fixture(scope="module")
def ns(cluster: ClusterHandle, crds: None) -> Iterator[str]:
    name = f"podium-op-{uuid.uuid4().hex[:6]}"
    assert cluster.kubectl("create", "namespace", name).returncode == 0
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterHandle, ns: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(cluster, ns, redis_server.url, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
    if os.environ.get("PODIUM_SHOW_OPERATOR_LOG"):
        print(op.log.read_text()[-20000:])


@pytest.fixture(scope="module")
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    r = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    yield r
    r.close()


def agent(name: str, replicas: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "labels": {"team": "q"}},
        "spec": {
            "role": "echo",
            # capabilities given: the CRD's uniqueness rule currently fails when the list is absent
            "capabilities": [{"name": "echo"}],
            "backend": {"command": {"args": ["cat"]}},
            "replicas": replicas,
            **spec,
        },
    }


def apply(cluster: ClusterHandle, ns: str, manifest: dict[str, Any]) -> None:
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    assert out.returncode == 0, out.stderr


def get(cluster: ClusterHandle, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", "-n", ns, kind, name, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else None


def status_of(cluster: ClusterHandle, ns: str, kind: str, name: str) -> dict[str, Any]:
    obj = get(cluster, ns, kind, name) or {}
    status: dict[str, Any] = obj.get("status") or {}
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def has_ready_node(cluster: ClusterHandle) -> bool:
    out = cluster.kubectl("get", "nodes", "-o", "json")
    if out.returncode != 0:
        return False
    for node in json.loads(out.stdout)["items"]:
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])):
            return True
    return False


CHILDREN = (("deployment", "{}"), ("service", "{}"), ("configmap", "{}-config"), ("secret", "{}-redis"))


def children_of(cluster: ClusterHandle, ns: str, name: str) -> dict[str, dict[str, Any] | None]:
    return {kind: get(cluster, ns, kind, pattern.format(name)) for kind, pattern in CHILDREN}


def test_agent_becomes_owned_children_and_a_redis_user(
    cluster: ClusterHandle, ns: str, operator: Operator, admin: redis.Redis
) -> None:
    apply(cluster, ns, agent("echo", replicas=0))
    kids = wait_for("the four children", lambda: (c := children_of(cluster, ns, "echo")) and all(c.values()) and c)
    uid = (get(cluster, ns, "agent", "echo") or {})["metadata"]["uid"]
    for kind, obj in kids.items():
        assert obj is not None
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("Agent", "echo", uid, True), kind
    assert admin.execute_command("ACL", "GETUSER", f"podium-agent:{ns}/echo") is not None
    status = wait_for(
        "status Ready", lambda: (s := status_of(cluster, ns, "agent", "echo")).get("phase") == "Ready" and s
    )
    assert status["ready"] == "0/0" and status["selector"] == "podium.dev/agent=echo"
    assert condition(status, "Ready")["reason"] == "ScaledToZero"
    table = cluster.kubectl("get", "agents", "-n", ns, "echo")
    assert table.stdout.split("\n")[0].split()[:5] == ["NAME", "ROLE", "READY", "PHASE", "LOAD"]
    assert table.stdout.split("\n")[1].split()[:4] == ["echo", "echo", "0/0", "Ready"]


def test_kubectl_scale_reaches_the_deployment(cluster: ClusterHandle, ns: str, operator: Operator) -> None:
    apply(cluster, ns, agent("scaled", replicas=0))
    wait_for("deployment", lambda: get(cluster, ns, "deployment", "scaled"))
    out = cluster.kubectl("scale", "-n", ns, "agent/scaled", "--replicas=2")
    assert out.returncode == 0, out.stderr
    wait_for("deployment replicas 2", lambda: (get(cluster, ns, "deployment", "scaled") or {})["spec"]["replicas"] == 2)
    wait_for("status.ready x/2", lambda: status_of(cluster, ns, "agent", "scaled").get("ready", "").endswith("/2"))
    out = cluster.kubectl("scale", "-n", ns, "agent/scaled", "--replicas=0")
    assert out.returncode == 0, out.stderr
    wait_for("deployment replicas 0", lambda: (get(cluster, ns, "deployment", "scaled") or {})["spec"]["replicas"] == 0)


def test_pods_become_ready_and_status_says_so(cluster: ClusterHandle, ns: str, operator: Operator) -> None:
    if not has_ready_node(cluster):
        pytest.skip("the local cluster has no Ready node to run agent pods")
    apply(cluster, ns, agent("runner", replicas=1))
    status = wait_for(
        "Agent Ready 1/1",
        lambda: (s := status_of(cluster, ns, "agent", "runner")).get("ready") == "1/1" and s,
        timeout=120,
    )
    assert status["phase"] in ("Ready", "Busy")
    assert condition(status, "Available")["status"] == "True"


def test_invalid_template_gets_a_condition_and_others_keep_reconciling(
    cluster: ClusterHandle, ns: str, operator: Operator
) -> None:
    apply(cluster, ns, agent("broken", replicas=0, template={"hostNetwork": True}))
    status = wait_for(
        "InvalidSpec", lambda: (s := status_of(cluster, ns, "agent", "broken")).get("phase") == "Error" and s
    )
    ready = condition(status, "Ready")
    assert ready["reason"] == "InvalidSpec" and "hostNetwork" in ready["message"]
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=broken", "-o", "json")
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert "InvalidSpec" in reasons
    apply(cluster, ns, agent("healthy", replicas=0))
    wait_for("the next Agent reconciles", lambda: status_of(cluster, ns, "agent", "healthy").get("phase") == "Ready")
    apply(cluster, ns, agent("broken", replicas=0))  # fixed
    wait_for("recovers", lambda: status_of(cluster, ns, "agent", "broken").get("phase") == "Ready")
    assert get(cluster, ns, "deployment", "broken") is not None


def test_team_reports_missing_and_resolved_members(cluster: ClusterHandle, ns: str, operator: Operator) -> None:
    team = {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Team",
        "metadata": {"name": "quality"},
        "spec": {"members": [{"agent": "ghost"}, {"selector": {"matchLabels": {"team": "q"}}}]},
    }
    apply(cluster, ns, team)
    status = wait_for("AgentNotFound", lambda: (s := status_of(cluster, ns, "team", "quality")).get("missing") and s)
    assert status["missing"] == ["ghost"]
    assert condition(status, "MembersResolved")["reason"] == "AgentNotFound"
    assert status["degraded"] is True
    apply(cluster, ns, agent("ghost", replicas=0))
    status = wait_for(
        "ghost resolved", lambda: (s := status_of(cluster, ns, "team", "quality")).get("missing") == [] and s
    )
    assert "ghost" in status["members"]
    assert operator.alive()


def test_operator_restart_recreates_and_rewrites_nothing(cluster: ClusterHandle, ns: str, operator: Operator) -> None:
    apply(cluster, ns, agent("steady", replicas=0))
    wait_for("steady Ready", lambda: status_of(cluster, ns, "agent", "steady").get("phase") == "Ready")
    time.sleep(3)  # let the first health round settle

    def versions() -> dict[str, tuple[str, str]]:
        out = {}
        for kind, obj in children_of(cluster, ns, "steady").items():
            assert obj is not None
            out[kind] = (obj["metadata"]["uid"], obj["metadata"]["resourceVersion"])
        return out

    before = versions()
    status_before = status_of(cluster, ns, "agent", "steady")
    operator.stop()
    operator.start()
    time.sleep(12)  # resume handlers, several health rounds and one resync period
    assert operator.alive()
    assert versions() == before
    status_after = status_of(cluster, ns, "agent", "steady")
    assert status_after["conditions"] == status_before["conditions"]
    assert status_after["phase"] == "Ready"


def test_deleting_the_agent_removes_everything(
    cluster: ClusterHandle, ns: str, operator: Operator, admin: redis.Redis
) -> None:
    apply(cluster, ns, agent("doomed", replicas=0))
    wait_for("children", lambda: all(children_of(cluster, ns, "doomed").values()))
    user = f"podium-agent:{ns}/doomed"
    wait_for("redis user", lambda: admin.execute_command("ACL", "GETUSER", user) is not None)
    out = cluster.kubectl("delete", "-n", ns, "agent", "doomed", "--timeout=60s")
    assert out.returncode == 0, out.stderr
    assert admin.execute_command("ACL", "GETUSER", user) is None
    wait_for("children garbage-collected", lambda: not any(children_of(cluster, ns, "doomed").values()), timeout=90)
