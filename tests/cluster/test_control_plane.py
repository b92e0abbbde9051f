"""The local control plane behaves like a real Kubernetes cluster: version, health, RBAC, controllers, lifecycle."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from podium_localcluster import processes
from podium_localcluster.launcher import LocalCluster
from tests.support.wait import wait_for

from .conftest import ClusterHandle


def has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    accounts = core.list_namespaced_service_account(namespace).items
    return any(sa.metadata is not None and sa.metadata.name == "default" for sa in accounts)


def test_server_is_the_pinned_kubernetes_version(cluster: ClusterHandle) -> None:
    out = cluster.kubectl("version", "-o", "json")
    assert out.returncode == 0, out.stderr
    versions = json.loads(out.stdout)
    assert versions["serverVersion"]["gitVersion"] == "v1.34.4"
    assert versions["clientVersion"]["gitVersion"] == "v1.34.4"


def test_api_server_reports_ready(cluster: ClusterHandle) -> None:
    out = cluster.kubectl("get", "--raw", "/readyz")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_kubernetes_service_gets_a_loopback_cluster_ip(kube_client: client.ApiClient, cluster: ClusterHandle) -> None:
    svc = client.CoreV1Api(kube_client).read_namespaced_service("kubernetes", "default")
    assert svc.spec is not None
    cidr = ipaddress.ip_network(cluster.state.service_cidr)
    assert cidr.subnet_of(ipaddress.ip_network("127.0.0.0/8"))
    assert svc.spec.cluster_ip == str(cidr.network_address + 1)


def test_controller_manager_creates_default_service_accounts(kube_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)

    wait_for(f"the default ServiceAccount in {namespace}", lambda: has_default_sa(core, namespace), 30)


def test_scheduler_considers_new_pods(kube_client: client.ApiClient, namespace: str) -> None:
    # With or without a node, the scheduler records a PodScheduled condition (True, or False: Unschedulable).
    core = client.CoreV1Api(kube_client)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="probe"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="none", command=["true"])]),
    )
    # Pod admission needs the namespace's default ServiceAccount, which the controller-manager creates.
    wait_for("the default ServiceAccount", lambda: has_default_sa(core, namespace), 30)
    core.create_namespaced_pod(namespace, pod)

    def scheduled_condition() -> bool:
        status = core.read_namespaced_pod("probe", namespace).status
        return status is not None and any(c.type == "PodScheduled" for c in (status.conditions or []))

    wait_for("the scheduler to set PodScheduled", scheduled_condition, 30)


def test_rbac_limits_non_admin_identities(cluster: ClusterHandle) -> None:
    node_kubeconfig = cluster.dir / "node.kubeconfig"
    out = cluster.kubectl(f"--kubeconfig={node_kubeconfig}", "get", "secrets", "-A")
    assert out.returncode != 0
    assert "forbidden" in out.stderr.lower()
    # The node identity is recognised as system:node:<name>, so the Node authorizer lets it read nodes.
    who = cluster.kubectl(f"--kubeconfig={node_kubeconfig}", "auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == f"system:node:{cluster.state.node_name}"
    assert "system:nodes" in info["groups"]


def test_node_is_ready_when_the_node_agent_runs(cluster: ClusterHandle) -> None:
    if not cluster.state.with_node:
        pytest.fail("the cluster runs without the node agent (--no-node, PODIUM_CLUSTER_NODE=0)")
    out = cluster.kubectl("get", "node", cluster.state.node_name, "-o", "json")
    assert out.returncode == 0, out.stderr
    conditions = {c["type"]: c["status"] for c in json.loads(out.stdout)["status"]["conditions"]}
    assert conditions.get("Ready") == "True"


def test_up_on_a_running_cluster_returns_at_once(cluster: ClusterHandle) -> None:
    local = LocalCluster(cluster.dir)
    before = dict(cluster.state.pids)
    started = time.monotonic()
    state = local.up(with_node=cluster.state.with_node, log=lambda _m: None)
    assert time.monotonic() - started < 3.0
    assert state.pids == before


def test_env_points_at_the_cluster(cluster: ClusterHandle) -> None:
    lines = LocalCluster(cluster.dir).env_lines()
    assert lines == [f"export KUBECONFIG={cluster.kubeconfig}", f"export PATH={cluster.bin}:$PATH"]
    assert (cluster.bin / "kubectl").resolve().name == "kubectl"
    assert (cluster.bin / "helm").resolve().exists()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # Like the servers themselves: connections left in TIME_WAIT do not stop a restart from listening.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_second_cluster_comes_up_and_down_leaving_nothing_behind(tmp_path: Path, cluster: ClusterHandle) -> None:
    # A separate control plane in its own directory: proves ports are chosen free, and `down` leaves no process.
    local = LocalCluster(tmp_path / "c2")
    state = local.up(with_node=False, timeout=180, log=lambda _m: None)
    try:
        assert state.ports["kube-apiserver"] != cluster.state.ports["kube-apiserver"]
        assert local.api_get(state, "/readyz")[0] == 200
        assert local.status()["state"] == "running"
        control_plane = dict(state.pids)
        # Asking for the node adds it to the running control plane without restarting anything.
        state = local.up(with_node=True, timeout=120, log=lambda _m: None)
        assert state.with_node and local.node_ready(state)
        assert {k: v for k, v in state.pids.items() if k != "node"} == control_plane
        # A crashed component is restarted alone; the rest keep running untouched.
        os.kill(state.pids["kube-scheduler"], signal.SIGKILL)
        wait_for("the scheduler to die", lambda: not processes.alive(state.pids["kube-scheduler"]), 10)
        assert local.status()["state"] == "degraded"
        repaired = local.up(timeout=120, log=lambda _m: None)
        assert repaired.pids["kube-scheduler"] != state.pids["kube-scheduler"]
        assert {k: v for k, v in repaired.pids.items() if k != "kube-scheduler"} == {
            k: v for k, v in state.pids.items() if k != "kube-scheduler"
        }
        assert local.status()["state"] == "running"
        state = repaired
        pids = dict(state.pids)
    finally:
        stopped = local.down(log=lambda _m: None)
    assert stopped
    assert all(not processes.group_members(pid) for pid in pids.values())
    assert all(_port_free(port) for port in state.ports.values())
    assert local.status()["state"] == "stopped"
    # Certificates and data are kept: the same CA signs the next start's identities.
    ca_before = (tmp_path / "c2" / "pki" / "ca.crt").read_bytes()
    again = local.up(with_node=False, timeout=180, log=lambda _m: None)
    try:
        assert (tmp_path / "c2" / "pki" / "ca.crt").read_bytes() == ca_before
        assert again.ports == state.ports
    finally:
        local.down(log=lambda _m: None)


def test_cli_status_and_env_describe_the_running_cluster(cluster: ClusterHandle) -> None:
    podium = [sys.executable, "-m", "podium_localcluster"]
    status = subprocess.run([*podium, "status", "--json", "--dir", str(cluster.dir)], capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["state"] == "running" and info["api_ready"] is True
    assert info["api_url"] == cluster.api_url
    assert all(c["alive"] for c in info["components"].values())
    env = subprocess.run([*podium, "env", "--dir", str(cluster.dir)], capture_output=True, text=True)
    # What a user pastes into a shell must make kubectl talk to this cluster.
    shell = f"{env.stdout.strip()}; kubectl get --raw /readyz"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=cluster.env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_helm_is_the_pinned_version(cluster: ClusterHandle) -> None:
    out = subprocess.run([str(cluster.bin / "helm"), "version", "--short"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # `go install` leaves helm's patch version unstamped (it reports "v3.19"); the minor is what charts check.
    assert out.stdout.startswith("v3.19")


def test_two_concurrent_ups_start_one_cluster(tmp_path: Path, cluster: ClusterHandle) -> None:
    # Two terminals (or two test sessions) running `up` at once must share one cluster, not race two etcds.
    root = tmp_path / "c3"
    cmd = [sys.executable, "-m", "podium_localcluster", "up", "--dir", str(root), "--no-node"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert sum("etcd ready" in out for out in outputs) == 1, outputs
        data_dir = f"--data-dir={root.resolve()}/etcd"
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        assert len([pid for pid in pids if processes.alive(pid) and data_dir in processes.cmdline(pid)]) == 1
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "podium_localcluster", "down", "--dir", str(root)], capture_output=True, text=True
        )
        assert down.returncode == 0, down.stderr
