"""`podium operator` as a process against the local cluster: Agents into workloads, Teams, restarts, bad specs."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import Operator, agent, apply, condition, get, require_ready_node, status_of

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
    require_ready_node(cluster)
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
