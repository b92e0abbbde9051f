"""Scale: 300 Agents (replicas 0) and 50 Teams reconcile to their final state; time and peak operator memory.

At full scale it takes minutes on a shared 2-core machine, so the suite runs it at 30/5. The numbers go to
docs/benchmarks.md (`## Operator scale`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium_localcluster.redis_server import RedisServer

from .conftest import ClusterHandle
from .helpers import Operator, delete_namespace_without_operator

# The suite runs a tenth of the scale; the figures in docs/benchmarks.md come from
# PODIUM_SCALE_AGENTS=300 PODIUM_SCALE_TEAMS=50.
AGENTS = int(os.environ.get("PODIUM_SCALE_AGENTS", "30"))
TEAMS = int(os.environ.get("PODIUM_SCALE_TEAMS", "5"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def scale_ns(cluster: ClusterHandle, crds: None) -> Iterator[str]:
    name = f"podium-scale-{uuid.uuid4().hex[:6]}"
    assert cluster.kubectl("create", "namespace", name).returncode == 0
    yield name
    delete_namespace_without_operator(cluster, name)


def manifests(count_agents: int, count_teams: int) -> str:
    items = []
    for i in range(count_agents):
        items.append(
            {
                "apiVersion": "podium.dev/v1alpha1",
                "kind": "Agent",
                "metadata": {"name": f"a{i:03d}", "labels": {"group": f"g{i % count_teams}"}},
                "spec": {
                    "role": "echo",
                    "capabilities": [{"name": "echo"}],
                    "backend": {"command": {"args": ["cat"]}},
                    "replicas": 0,
                },
            }
        )
    for t in range(count_teams):
        items.append(
            {
                "apiVersion": "podium.dev/v1alpha1",
                "kind": "Team",
                "metadata": {"name": f"t{t:02d}"},
                "spec": {"members": [{"selector": {"matchLabels": {"group": f"g{t}"}}}]},
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def settled(cluster: ClusterHandle, ns: str) -> tuple[int, int]:
    agents = json.loads(cluster.kubectl("get", "agents", "-n", ns, "-o", "json", timeout=120).stdout)["items"]
    teams = json.loads(cluster.kubectl("get", "teams", "-n", ns, "-o", "json", timeout=120).stdout)["items"]
    ready_agents = sum(1 for a in agents if (a.get("status") or {}).get("phase") == "Ready")
    per_team = AGENTS // TEAMS
    done_teams = sum(1 for t in teams if (t.get("status") or {}).get("memberCount", 0) >= per_team)
    return ready_agents, done_teams


# The apply alone takes minutes at 1,000+ objects on a loaded machine: the budget grows with the size.
@pytest.mark.timeout(600 + 2 * (AGENTS + TEAMS))
def test_300_agents_and_50_teams(
    cluster: ClusterHandle, scale_ns: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    op = Operator(cluster, scale_ns, redis_server.url, tmp_path / "operator.log")
    op.start()
    try:
        assert op.process is not None
        time.sleep(3)
        start = time.monotonic()
        out = cluster.kubectl("apply", "-n", scale_ns, "-f", "-", input=manifests(AGENTS, TEAMS), timeout=1800)
        assert out.returncode == 0, out.stderr
        applied = time.monotonic() - start
        deadline = time.monotonic() + 600
        state = (0, 0)
        while time.monotonic() < deadline:
            state = settled(cluster, scale_ns)
            if state == (AGENTS, TEAMS):
                break
            time.sleep(2)
        elapsed = time.monotonic() - start
        rss = peak_rss_mib(op.process.pid)
        deployments = cluster.kubectl("get", "deployments", "-n", scale_ns, "-o", "name", timeout=120).stdout.split()
        print(
            f"\nSCALE agents={AGENTS} teams={TEAMS} applied={applied:.1f}s settled={elapsed:.1f}s "
            f"after_apply={elapsed - applied:.1f}s peak_rss={rss:.0f}MiB"
        )
        assert state == (AGENTS, TEAMS), f"not settled after {elapsed:.0f}s: {state}"
        assert len(deployments) == AGENTS
        assert op.alive()
    finally:
        op.stop()
