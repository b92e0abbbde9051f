"""The chart as a Helm user meets it on the local cluster: `helm test` proves the install, a typo in values stops
`helm install` before anything is made, and `helm upgrade` from the previous chart version keeps a run going."""

from __future__ import annotations

import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..cluster.helpers import helm
from .conftest import ClusterHandle
from .helpers import CHART, ROOT, Release, cluster_wide_operators, diagnose, get, wait_for


def uninstall(cluster: ClusterHandle, rel: Release) -> None:
    helm(cluster, "uninstall", rel.name, "--namespace", rel.system, "--wait", "--timeout", "60s")
    for kind in ("orchestrations", "agents"):
        for obj in cluster.kubectl("get", kind, "-n", rel.namespace, "-o", "name").stdout.split():
            cluster.kubectl("patch", obj, "-n", rel.namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    cluster.kubectl("delete", "namespace", rel.namespace, rel.system, "--wait=false")


def new_release(cluster: ClusterHandle, prefix: str) -> Release:
    others = cluster_wide_operators(cluster)
    if others:
        pytest.fail(f"a cluster-wide Podium runs ({', '.join(others)}; `make demo` leaves one): helm uninstall it")
    suffix = uuid.uuid4().hex[:6]
    rel = Release(name=f"{prefix}-{suffix}", system=f"{prefix}-{suffix}-system", namespace=f"{prefix}-{suffix}")
    assert cluster.kubectl("create", "namespace", rel.namespace).returncode == 0
    return rel


def install(cluster: ClusterHandle, rel: Release, chart: Path, *sets: str) -> None:
    args = ["install", rel.name, str(chart), "--namespace", rel.system, "--create-namespace"]
    for s in (f"watchNamespaces={{{rel.namespace}}}", "heartbeatLeaseSeconds=5", "logFormat=text", *sets):
        args += ["--set", s]
    installed = helm(cluster, *args, "--wait", "--timeout", "180s")
    assert installed.returncode == 0, f"helm install failed: {installed.stderr}\n{diagnose(cluster, rel)}"


@pytest.fixture
def release(cluster: ClusterHandle) -> Iterator[Release]:
    rel = new_release(cluster, "podium-chart")
    try:
        yield rel
    finally:
        uninstall(cluster, rel)


def test_helm_test_proves_the_install_with_an_agent_running_one_task(cluster: ClusterHandle, release: Release) -> None:
    install(cluster, release, CHART)
    tested = helm(cluster, "test", release.name, "--namespace", release.system, "--logs", "--timeout", "300s")
    assert tested.returncode == 0, f"{tested.stdout}\n{tested.stderr}\n{diagnose(cluster, release)}"
    assert "Phase:          Succeeded" in tested.stdout
    assert "podium selftest passed" in tested.stdout and "an Agent ran one task of an Orchestration" in tested.stdout
    # It ran where the operator watches, and left nothing behind: its objects and the hook's pod and RBAC are gone.
    assert f"creating Agent {release.namespace}/" in tested.stdout
    assert cluster.kubectl("get", "agents,orchestrations", "-n", release.namespace, "-o", "name").stdout.strip() == ""
    name = f"{release.name}-selftest"
    for kind, ns in (("serviceaccount", release.system), ("role", release.namespace)):
        wait_for(f"{kind} {name} deleted", lambda k=kind, n=ns: get(cluster, k, name, "-n", n) is None, timeout=60)
    # The pod stays, finished, for its log, until the next helm test replaces it.
    assert (get(cluster, "pod", name, "-n", release.system) or {})["status"]["phase"] == "Succeeded"
    again = helm(cluster, "test", release.name, "--namespace", release.system, "--timeout", "300s")
    assert again.returncode == 0, again.stderr


def test_a_typo_in_values_fails_helm_install_before_anything_is_made(cluster: ClusterHandle) -> None:
    name = f"podium-typo-{uuid.uuid4().hex[:6]}"
    out = helm(
        cluster, "install", name, str(CHART), "--namespace", name, "--create-namespace",
        "--set", "redis.enabeld=false", "--set", "watchNamespaces={default}",
    )  # fmt: skip
    try:
        assert out.returncode != 0
        assert "values don't meet the specifications of the schema" in out.stderr
        assert "at '/redis': additional properties 'enabeld' not allowed" in out.stderr
        assert helm(cluster, "status", name, "--namespace", name).returncode != 0  # no release
        assert get(cluster, "namespace", name) is None
    finally:
        cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def previous_chart(into: Path) -> tuple[str, Path]:
    """The chart as it was at the newest commit whose Chart.yaml has another version than now: (version, dir)."""
    current = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True).stdout

    for rev in git("log", "--format=%H", "--", "charts/podium/Chart.yaml").decode().split():
        version = yaml.safe_load(git("show", f"{rev}:charts/podium/Chart.yaml"))["version"]
        if version != current:
            with tarfile.open(fileobj=BytesIO(git("archive", rev, "charts/podium"))) as tar:
                # Python 3.11.4+ (and patched builds) take a filter; Debian's 3.11.2 has none. Our own archive.
                safe: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(into, **safe)
            return str(version), into / "charts" / "podium"
    pytest.fail(f"no commit has a chart version other than {current}: bump charts/podium/Chart.yaml")


def slow_pipeline(namespace: str, stages: int) -> list[dict[str, Any]]:
    agent = {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "slow", "namespace": namespace, "labels": {"team": "upgrade"}},
        # Each stage takes a few seconds, so the run is still going when the operator is replaced.
        "spec": {"role": "copier", "backend": {"command": {"args": ["sh", "-c", "sleep 4; cat"]}}},
    }
    run = {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Orchestration",
        "metadata": {"name": "across-upgrade", "namespace": namespace},
        "spec": {
            "strategy": "pipeline",
            "agentSelector": {"matchLabels": {"team": "upgrade"}},
            "input": {"text": "kept across a helm upgrade"},
            "pipeline": {"stages": [{"name": f"s{i}", "agent": "slow"} for i in range(stages)]},
            "limits": {"timeoutSeconds": 240, "maxTasks": 3 * stages},
        },
    }
    return [agent, run]


def test_helm_upgrade_from_the_previous_chart_version_keeps_a_run_going(
    cluster: ClusterHandle, release: Release, tmp_path: Path
) -> None:
    version, old_chart = previous_chart(tmp_path)
    install(cluster, release, old_chart)
    listed = helm(cluster, "list", "--namespace", release.system, "-o", "yaml")
    assert yaml.safe_load(listed.stdout)[0]["chart"] == f"podium-{version}"
    ns = release.namespace
    applied = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(slow_pipeline(ns, stages=5)))
    assert applied.returncode == 0, applied.stderr

    def status() -> dict[str, Any]:
        return (get(cluster, "orchestration", "across-upgrade", "-n", ns) or {}).get("status") or {}

    def progressed() -> str | None:
        done = int((status().get("progress") or "0/0").split("/")[0])
        return status().get("progress") if status().get("phase") == "Running" and done >= 1 else None

    before = wait_for("the run Running with a stage done", progressed, timeout=120)

    # As docs/operations.md says: new CRDs first (Helm never upgrades crds/), then the chart.
    crds = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    assert crds.returncode == 0, crds.stderr
    upgraded = helm(
        cluster, "upgrade", release.name, str(CHART), "--namespace", release.system, "--reset-then-reuse-values",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    assert upgraded.returncode == 0, f"{upgraded.stderr}\n{diagnose(cluster, release)}"
    listed = helm(cluster, "list", "--namespace", release.system, "-o", "yaml")
    now = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    assert yaml.safe_load(listed.stdout)[0]["chart"] == f"podium-{now}"
    during = status()
    assert during.get("phase") == "Running", f"the run ended before the new operator took over: {during}"

    final = wait_for(
        "the run to finish under the new operator",
        lambda: s if (s := status()).get("phase") in ("Succeeded", "Failed") else None,
        timeout=180,
    )
    assert final["phase"] == "Succeeded", f"{final}\n{diagnose(cluster, release)}"
    assert final["progress"] == "5/5" and before != final["progress"]
    assert final["result"] == {"text": "kept across a helm upgrade"}
    # Nothing finished was redone: each stage ran exactly once (one attempt each in the run's task list).
    assert sorted(t["name"] for t in final.get("tasks") or []) == [f"stage-s{i}" for i in range(5)]
    assert all(t.get("attempts", 1) == 1 for t in final.get("tasks") or []), final.get("tasks")
