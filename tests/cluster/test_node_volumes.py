"""Pods with emptyDir and hostPath volumes on `podium node`: they start, restart, and keep or share their files.

Each pod also mounts a volume over the node's own state directory, as an agent pod's emptyDir at /tmp does when
the checkout lives under /tmp: the node then stages mounts in a directory every pod shares, where one pod's
layout used to break the next pod's start (`mkdir: cannot create directory '/run/podium-node/stage/2': File
exists`) and every such pod crash-looped.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import apply, require_ready_node

# First run: exit 1, so the node restarts the container (after its 10 s back-off); the second run stays up.
RESTART_ONCE = """
if runs == 1:
    sys.exit(1)
time.sleep(3600)
"""


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def pod(name: str, script: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.12",
                    "command": ["python", "-u", "-c", script],
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }


def create(cluster: ClusterHandle, core: client.CoreV1Api, ns: str, manifest: dict[str, Any]) -> None:
    # A bare pod is refused until the namespace's default ServiceAccount exists (a controller adds it).
    wait_for("the default ServiceAccount", lambda: [a for a in core.list_namespaced_service_account(ns).items])
    apply(cluster, ns, manifest)


def restarted_once_and_running(core: client.CoreV1Api, ns: str, name: str) -> client.V1Pod | None:
    p = core.read_namespaced_pod(name, ns)
    cs = (p.status.container_statuses or [None])[0]
    if cs is not None and cs.restart_count >= 1 and cs.state.running:
        return p
    return None


def describe(cluster: ClusterHandle, ns: str, name: str) -> str:
    status = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.containerStatuses}").stdout
    logs = cluster.kubectl("logs", "-n", ns, name).stdout
    return f"status: {status}\nlogs:\n{logs}"


def test_empty_dir_keeps_its_files_across_a_restart(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api, tmp_path: Path
) -> None:
    require_ready_node(cluster)
    scratch = tmp_path / "scratch"
    script = (
        textwrap.dedent(f"""
        import pathlib, sys, time
        counter = pathlib.Path("{scratch}/runs")
        runs = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(runs))
        print("run", runs, flush=True)
    """)
        + RESTART_ONCE
    )
    volumes = [{"name": "scratch", "emptyDir": {}}, {"name": "cover", "emptyDir": {}}]
    mounts = [{"name": "scratch", "mountPath": str(scratch)}, {"name": "cover", "mountPath": str(cluster.dir)}]
    create(cluster, core, namespace, pod("scratch", script, volumes, mounts))

    try:
        p = wait_for("a restart and a second run", lambda: restarted_once_and_running(core, namespace, "scratch"))
    except AssertionError as e:
        raise AssertionError(f"{e}\n{describe(cluster, namespace, 'scratch')}") from None
    cs = p.status.container_statuses[0]
    assert cs.restart_count == 1 and cs.last_state.terminated.exit_code == 1, describe(cluster, namespace, "scratch")
    # The emptyDir outlived the first container: the second run counted on from its file.
    wait_for("the second run's log", lambda: "run 2" in cluster.kubectl("logs", "-n", namespace, "scratch").stdout)
    assert cluster.kubectl("logs", "-n", namespace, "scratch").stdout.split("\n")[:2] == ["run 1", "run 2"]
    assert not (scratch / "runs").exists()  # the volume lives in the pod's directory, not at the mount point


def test_host_paths_read_only_and_read_write_across_a_restart(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api, tmp_path: Path
) -> None:
    require_ready_node(cluster)
    models, out = tmp_path / "models", tmp_path / "out"
    models.mkdir()
    (models / "model.txt").write_text("weights v1")
    ro, rw = tmp_path / "mnt" / "models", tmp_path / "mnt" / "out"
    script = (
        textwrap.dedent(f"""
        import errno, json, pathlib, sys, time
        log = pathlib.Path("{rw}/runs.log")
        runs = len(log.read_text().splitlines()) + 1 if log.exists() else 1
        try:
            pathlib.Path("{ro}/written-by-pod").write_text("x")
            ro = "writable"
        except OSError as e:
            ro = errno.errorcode[e.errno]
        report = {{"run": runs, "model": pathlib.Path("{ro}/model.txt").read_text(), "read_only": ro}}
        with log.open("a") as f:
            f.write(json.dumps(report) + "\\n")
    """)
        + RESTART_ONCE
    )
    volumes = [
        {"name": "models", "hostPath": {"path": str(models), "type": "Directory"}},
        {"name": "out", "hostPath": {"path": str(out), "type": "DirectoryOrCreate"}},
        {"name": "cover", "emptyDir": {}},
    ]
    mounts = [
        {"name": "models", "mountPath": str(ro), "readOnly": True},
        {"name": "out", "mountPath": str(rw)},
        {"name": "cover", "mountPath": str(cluster.dir)},
    ]
    create(cluster, core, namespace, pod("models", script, volumes, mounts))

    try:
        wait_for("a restart and a second run", lambda: restarted_once_and_running(core, namespace, "models"))
        wait_for("two runs on the host", lambda: line_count(out / "runs.log") == 2)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{describe(cluster, namespace, 'models')}") from None
    runs = [json.loads(line) for line in (out / "runs.log").read_text().splitlines()]
    # Each run read the host's file, could not write beside it, and wrote through the read-write mount.
    assert runs == [{"run": n, "model": "weights v1", "read_only": "EROFS"} for n in (1, 2)]
    assert sorted(p.name for p in models.iterdir()) == ["model.txt"]


def test_missing_host_path_waits_with_the_reason(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api, tmp_path: Path
) -> None:
    require_ready_node(cluster)
    gone = tmp_path / "no-such-dir"
    volumes = [{"name": "models", "hostPath": {"path": str(gone), "type": "Directory"}}]
    mounts = [{"name": "models", "mountPath": str(tmp_path / "mnt")}]
    create(cluster, core, namespace, pod("nomodel", "print('never')", volumes, mounts))

    def waiting() -> str | None:
        cs = (core.read_namespaced_pod("nomodel", namespace).status.container_statuses or [None])[0]
        message = cs.state.waiting.message if cs and cs.state.waiting else None
        # A just-bound pod may first wait on a 403 for its service-account configMap (the Node authorizer learns
        # the pod's edges a moment later); the node retries every second and then names the hostPath.
        return message if message and "hostPath" in message else None

    message = wait_for("the container to wait naming the hostPath", waiting, timeout=30)
    assert message == f"MountVolume failed: hostPath type check failed: {gone} does not exist"
    assert not gone.exists()
