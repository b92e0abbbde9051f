"""Pure logic of `podium node`: env building, pod IPs, back-off, status, hosts, volumes, endpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podium_localcluster.node.backoff import restart_delay, should_restart
from podium_localcluster.node.envvars import EnvError, Sources, container_env, expand, referenced_objects, service_env
from podium_localcluster.node.hosts import render_hosts
from podium_localcluster.node.ipam import PodIPAllocator, PodIPExhausted
from podium_localcluster.node.runtime import NotRunnable, launch_argv, resolve_program, stage_dir
from podium_localcluster.node.services import PodView, desired_routes
from podium_localcluster.node.status import ContainerState, now, pod_phase, pod_status
from podium_localcluster.node.volumes import (
    Mount,
    VolumeError,
    container_mounts,
    materialize,
    refresh,
    token_requests,
)

POD = {
    "metadata": {"name": "web-1", "namespace": "team", "uid": "u1", "labels": {"app": "web"}},
    "spec": {"nodeName": "podium-node", "serviceAccountName": "agent"},
}


def test_expand_replaces_known_keeps_unknown_and_escapes() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


def test_container_env_order_valuefrom_and_expansion() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "sec"}}],
        "env": [
            {"name": "HOST", "value": "$(CFG_host):$(PORT)"},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}},
        ],
    }
    src = Sources(secrets={"sec": {"password": "pw", "PORT": "80"}}, config_maps={"cfg": {"host": "h"}})
    env = container_env(POD, container, src, "127.64.0.9", {"BASE": "b"})
    assert env["HOST"] == "h:80"
    assert env["PASS"] == "pw"
    assert (env["IP"], env["NS"], env["NODE"], env["APP"]) == ("127.64.0.9", "team", "podium-node", "web")
    assert env["BASE"] == "b" and "OPT" not in env


def test_missing_required_reference_is_a_clear_error() -> None:
    container = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(EnvError, match='secret "nope" not found'):
        container_env(POD, container, Sources(), "127.64.0.2")


def test_referenced_objects_covers_env_and_volumes() -> None:
    pod = {
        "spec": {
            "containers": [{"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}]}],
            "volumes": [
                {"name": "v", "configMap": {"name": "c1"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}},
            ],
        }
    }
    assert referenced_objects(pod) == ({"s1"}, {"c1", "kube-root-ca.crt"})


def test_service_env_like_kubelet() -> None:
    svc = {
        "metadata": {"name": "my-db", "namespace": "team"},
        "spec": {"clusterIP": "127.96.0.7", "ports": [{"port": 5432, "name": "pg"}]},
    }
    other = {
        "metadata": {"name": "x", "namespace": "other"},
        "spec": {"clusterIP": "127.96.0.8", "ports": [{"port": 1}]},
    }
    env = service_env([svc, other], "team")
    assert env["MY_DB_SERVICE_HOST"] == "127.96.0.7"
    assert env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_PORT_5432_TCP"] == "tcp://127.96.0.7:5432"
    assert not any(k.startswith("X_") for k in env)


def test_ipam_distinct_reuse_and_exhaustion() -> None:
    ipam = PodIPAllocator("127.64.0.0/30")  # .2 is the only pod address
    assert ipam.allocate("a") == "127.64.0.2"
    assert ipam.allocate("a") == "127.64.0.2"
    with pytest.raises(PodIPExhausted):
        ipam.allocate("b")
    ipam.release("a")
    assert ipam.allocate("b") == "127.64.0.2"
    big = PodIPAllocator()
    ips = {big.allocate(str(i)) for i in range(300)}
    assert len(ips) == 300 and all(ip.startswith("127.64.") for ip in ips)
    with pytest.raises(ValueError, match="loopback"):
        PodIPAllocator("10.0.0.0/16")


def test_backoff_and_restart_policy() -> None:
    assert [restart_delay(n, base=10) for n in range(7)] == [0, 10, 20, 40, 80, 160, 300]
    assert should_restart("Always", 0) and should_restart("OnFailure", 3) and not should_restart("OnFailure", 0)
    assert not should_restart("Never", 1)
    with pytest.raises(ValueError, match="restartPolicy"):
        should_restart("Sometimes", 0)


def test_phase_and_conditions() -> None:
    t = now()
    running = ContainerState("a", state="running", started_at=t, ready=True, started=True)
    st = pod_status([running], "127.64.0.2", t)
    assert st["phase"] == "Running" and st["podIP"] == "127.64.0.2"
    ready = {c["type"]: c["status"] for c in st["conditions"]}
    assert ready == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    done_ok = ContainerState("a", state="terminated", exit_code=0, final=True)
    done_bad = ContainerState("b", state="terminated", exit_code=3, final=True)
    assert pod_phase([done_ok]) == "Succeeded"
    assert pod_phase([done_ok, done_bad]) == "Failed"
    assert pod_phase([ContainerState("a", reason="ExecutableNotFound")]) == "Pending"
    failed = pod_status([done_bad], "127.64.0.2", t)["containerStatuses"][0]
    assert failed["state"]["terminated"]["exitCode"] == 3


def test_hosts_short_names_only_in_own_namespace() -> None:
    svcs = [
        {"metadata": {"name": "api", "namespace": "team"}, "spec": {"clusterIP": "127.96.0.5"}},
        {"metadata": {"name": "db", "namespace": "other"}, "spec": {"clusterIP": "127.96.0.6"}},
        {"metadata": {"name": "headless", "namespace": "team"}, "spec": {"clusterIP": "None"}},
    ]
    text = render_hosts("web-1", "127.64.0.2", "team", svcs)
    assert "127.96.0.5\tapi api.team api.team.svc api.team.svc.cluster.local" in text
    assert "127.96.0.6\tdb.other " in text and "\tdb " not in text
    assert "headless" not in text and "127.64.0.2\tweb-1" in text


def test_volumes_materialized(tmp_path: Path) -> None:
    pod = {
        **POD,
        "spec": {
            **POD["spec"],
            "volumes": [
                {"name": "sec", "secret": {"secretName": "s", "items": [{"key": "k", "path": "sub/file"}]}},
                {"name": "scratch", "emptyDir": {}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {
                                "downwardAPI": {
                                    "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                                }
                            },
                        ]
                    },
                },
            ],
        },
    }
    assert token_requests(pod) == {("", 3607)}
    src = Sources(secrets={"s": {"k": "v"}}, config_maps={"kube-root-ca.crt": {"ca.crt": "CA"}})
    vols = materialize(pod, tmp_path, src, {("", 3607): "TOKEN"}, "127.64.0.2")
    sa = vols["kube-api-access"]
    assert (sa / "token").read_text() == "TOKEN" and (sa / "ca.crt").read_text() == "CA"
    assert (sa / "namespace").read_text() == "team"
    assert (vols["sec"] / "sub/file").read_text() == "v"
    mounts = container_mounts(
        {
            "volumeMounts": [
                {
                    "name": "kube-api-access",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "readOnly": True,
                }
            ]
        },
        vols,
    )
    assert mounts == [Mount(sa, "/var/run/secrets/kubernetes.io/serviceaccount", True)]
    with pytest.raises(VolumeError, match='secret "s" not found'):
        materialize(pod, tmp_path / "x", Sources(config_maps=src.config_maps), {("", 3607): "T"}, "127.64.0.2")


def test_volume_refresh_updates_files_in_the_same_directory(tmp_path: Path) -> None:
    pod = {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "scratch", "emptyDir": {}}]}}
    vols = materialize(pod, tmp_path, Sources(config_maps={"c": {"a.json": "1", "old": "x"}}), {}, "127.1.0.5")
    inode = vols["cfg"].stat().st_ino  # containers see the volume through a bind mount of this very directory
    assert refresh(pod, tmp_path, Sources(config_maps={"c": {"a.json": "1", "old": "x"}})) == []
    assert refresh(pod, tmp_path, Sources(config_maps={"c": {"a.json": "2"}})) == ["cfg"]
    assert (vols["cfg"] / "a.json").read_text() == "2" and not (vols["cfg"] / "old").exists()
    assert vols["cfg"].stat().st_ino == inode
    # The ConfigMap gone (the pod is being deleted): keep the last content rather than empty the volume.
    assert refresh(pod, tmp_path, Sources()) == []
    assert (vols["cfg"] / "a.json").read_text() == "2"


def test_resolve_program_reasons() -> None:
    assert resolve_program(["sh"], "/usr/bin:/bin").endswith("/sh")
    with pytest.raises(NotRunnable) as e1:
        resolve_program([], "/bin")
    assert e1.value.reason == "ImageNotRunnable"
    with pytest.raises(NotRunnable) as e2:
        resolve_program(["no-such-program-xyz"], "/bin")
    assert e2.value.reason == "ExecutableNotFound" and "no-such-program-xyz" in e2.value.message


def test_mount_script_runs_in_private_namespace(tmp_path: Path) -> None:
    """The bind mounts are visible to the program and not to the host (needs root, as the node does)."""
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "f").write_text("secret-content")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.96.0.5 api\n")
    target = tmp_path / "mnt"
    cmd = launch_argv(
        ["/bin/sh", "-c", f"cat {target}/f; cat /etc/hosts; touch {target}/g 2>/dev/null || echo read-only"],
        [Mount(tmp_path / "vol", str(target), True)],
        hosts,
        str(tmp_path),
        stage=tmp_path / "st",
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert out == "secret-content127.96.0.5 api\nread-only\n"
    assert not (target / "f").exists()  # the host does not see the mount
    assert "127.96.0.5 api" not in Path("/etc/hosts").read_text()


def test_sitecustomize_rewrites_wildcard_binds() -> None:
    shim = Path(__import__("podium_localcluster.node.podworker", fromlist=["SHIM_DIR"]).SHIM_DIR)
    code = (
        "import socket\n"
        "a = socket.socket(); a.bind(('0.0.0.0', 0)); print(a.getsockname()[0])\n"
        "b = socket.socket(socket.AF_INET6); b.bind(('::', 0)); print(b.getsockname()[0])\n"
    )
    env = {"PYTHONPATH": str(shim), "PODIUM_POD_IP": "127.64.3.4", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["127.64.3.4", "::ffff:127.64.3.4"]


def test_routes_from_ready_selected_pods() -> None:
    svc = {
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"clusterIP": "127.96.0.5", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    c = [{"name": "c", "ports": [{"name": "http", "containerPort": 8000}]}]
    pods = [
        PodView("team", {"app": "web"}, "127.64.0.2", True, c),
        PodView("team", {"app": "web"}, "127.64.0.3", False, c),  # not ready
        PodView("other", {"app": "web"}, "127.64.0.4", True, c),  # other namespace
    ]
    assert desired_routes([svc], pods) == {("127.96.0.5", 80): [("127.64.0.2", 8000)]}
    off_loopback = {**svc, "spec": {**svc["spec"], "clusterIP": "10.0.0.5"}}
    assert desired_routes([off_loopback], pods) == {}


def test_a_volume_over_the_node_directory_hides_neither_sources_nor_the_program(tmp_path: Path) -> None:
    """An emptyDir mounted at a parent of the node's state dir (agent pods mount one at /tmp; a checkout may live
    under /tmp) must not hide the other volumes' sources nor the program the container runs."""
    node = tmp_path / "node"
    (node / "config").mkdir(parents=True)
    (node / "config" / "agent.json").write_text('{"role": "x"}\n')
    (node / "empty").mkdir()
    program_dir = node / "venv" / "bin"
    program_dir.mkdir(parents=True)
    program = program_dir / "show"
    program.write_text("#!/bin/sh\ncat /etc/podium-test/agent.json; ls -A " + str(tmp_path) + "\n")
    program.chmod(0o755)
    mounts = [Mount(node / "empty", str(tmp_path), False), Mount(node / "config", "/etc/podium-test", True)]
    stage = stage_dir([node / "stage", tmp_path.parent / f"{tmp_path.name}-stage"], [m.target for m in mounts])
    assert not str(stage).startswith(str(tmp_path) + "/")
    cmd = launch_argv([str(program)], mounts, None, "/", stage=stage, keep_visible=[program_dir.parent])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ['{"role": "x"}', "node"]  # the emptyDir shows only the re-exposed program path
