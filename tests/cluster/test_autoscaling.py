"""A HorizontalPodAutoscaler drives an Agent through its scale subresource, and the operator never fights it.

There is no metrics server in the local cluster, so the HPA's CPU metric cannot be read. The v1.34 HPA controller
(`reconcileAutoscaler`) still enforces its bounds without metrics: a target below minReplicas is scaled up to
min, one above maxReplicas down to max, both without the scale-down stabilisation window. That is what these
tests drive.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import Operator, agent, apply, get, require_ready_node, status_of

# The HPA controller syncs every 15 s, and its REST mapper may need a 30 s reset to see a CRD made after it started.
HPA_TIMEOUT = 120.0
PODS_TIMEOUT = 180.0  # three agent processes starting on a shared 2-core machine


def hpa(name: str, target: str, min_replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "podium.dev/v1alpha1", "kind": "Agent", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            # Unreadable here (no metrics server): the HPA acts on its bounds alone.
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                }
            ],
        },
    }


def resync_seconds(operator: Operator) -> float:
    """The operator process's own PODIUM_RESYNC_SECONDS, read from its environment rather than assumed."""
    assert operator.process is not None
    environ = Path(f"/proc/{operator.process.pid}/environ").read_bytes().split(b"\0")
    values = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PODIUM_RESYNC_SECONDS=")]
    assert values, "the operator runs without PODIUM_RESYNC_SECONDS"
    return float(values[0])


def replicas(cluster: ClusterHandle, ns: str, name: str) -> tuple[int | None, int | None]:
    """(Agent spec.replicas, Deployment spec.replicas)."""
    ag = get(cluster, ns, "agent", name) or {}
    dep = get(cluster, ns, "deployment", name) or {}
    return ag.get("spec", {}).get("replicas"), dep.get("spec", {}).get("replicas")


def ready_pods(cluster: ClusterHandle, ns: str, selector: str) -> int:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json")
    assert out.returncode == 0, out.stderr
    return sum(
        1
        for pod in json.loads(out.stdout)["items"]
        if pod["metadata"].get("deletionTimestamp") is None
        and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    )


def rescales(cluster: ClusterHandle, ns: str, name: str) -> dict[str, int]:
    """How often the HPA rescaled its target, by event message ("New size: 3; reason: ...")."""
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        f"involvedObject.name={name},reason=SuccessfulRescale",
        "-o",
        "json",
    )
    assert out.returncode == 0, out.stderr
    counts: dict[str, int] = {}
    for event in json.loads(out.stdout)["items"]:
        size = event["message"].split(";")[0]
        counts[size] = counts.get(size, 0) + int(event.get("count") or 1)
    return counts


def hold(cluster: ClusterHandle, ns: str, name: str, want: int, seconds: float) -> None:
    """Sample both replica counts for `seconds`; any other value means someone set them back."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert replicas(cluster, ns, name) == (want, want), f"replicas moved away from {want}"
        time.sleep(1.0)


def settled(cluster: ClusterHandle, ns: str, name: str, want: int) -> dict[str, Any]:
    """Wait until the Agent, its Deployment, its pods and its status all show `want` replicas; return the status."""
    wait_for(f"Agent and Deployment at {want}", lambda: replicas(cluster, ns, name) == (want, want), HPA_TIMEOUT)
    status: dict[str, Any] = wait_for(
        f"status {want}/{want} with status.replicas {want}",
        lambda: (
            (s := status_of(cluster, ns, "agent", name)).get("ready") == f"{want}/{want}"
            and s.get("replicas") == want
            and s
        ),
        PODS_TIMEOUT,
    )
    assert status["selector"] == f"podium.dev/agent={name}"
    wait_for(f"{want} Ready pods", lambda: ready_pods(cluster, ns, status["selector"]) == want, PODS_TIMEOUT)
    return status


def hpa_reads(cluster: ClusterHandle, ns: str, name: str, replicas: int) -> None:
    """Wait until the HPA reports the count it read through the Agent's scale subresource (on its next sync)."""
    wait_for(
        f"HPA currentReplicas {replicas}",
        lambda: (get(cluster, ns, "hpa", name) or {}).get("status", {}).get("currentReplicas") == replicas,
        HPA_TIMEOUT,
    )


def test_hpa_scales_an_agent_and_the_operator_follows_without_fighting(
    cluster: ClusterHandle, ns: str, operator: Operator
) -> None:
    require_ready_node(cluster)
    name = "autoscaled"
    apply(cluster, ns, agent(name, replicas=1))
    settled(cluster, ns, name, 1)  # starts from 1: an HPA leaves a target at 0 alone

    apply(cluster, ns, hpa(name, name, min_replicas=3, max_replicas=4))
    settled(cluster, ns, name, 3)
    hpa_reads(cluster, ns, name, 3)
    table = cluster.kubectl("get", "hpa", "-n", ns, name)
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS"]
    assert row.split()[1] == f"Agent/{name}" and row.split()[-2] == "3", table.stdout

    # Two of the operator's resync periods (each reconciles the Agent again): nothing sets the 3 back.
    hold(cluster, ns, name, 3, 2 * resync_seconds(operator) + 5)
    # Had the operator written 1 back, the HPA would have had to raise it to 3 again.
    assert rescales(cluster, ns, name) == {"New size: 3": 1}
    assert operator.alive()

    apply(cluster, ns, hpa(name, name, min_replicas=1, max_replicas=2))
    settled(cluster, ns, name, 2)
    hpa_reads(cluster, ns, name, 2)
    hold(cluster, ns, name, 2, resync_seconds(operator) + 5)
    assert rescales(cluster, ns, name) == {"New size: 3": 1, "New size: 2": 1}
    assert operator.alive()
