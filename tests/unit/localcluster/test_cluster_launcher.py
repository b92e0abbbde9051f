"""Pure parts of the local-cluster launcher: certificates, port choice, command lines, process-group stop."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podium_localcluster import build, launcher, pki, processes


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_apiserver_cert_covers_every_name_clients_use(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, launcher.cert_specs("podium-node", "127.96.0.0/16"))
    cert = load(tmp_path / "apiserver.crt")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("127.96.0.1"),
    }
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    # Signed by our CA: verify the signature chain with the CA's public key.
    cert.verify_directly_issued_by(load(tmp_path / "ca.crt"))


@pytest.mark.parametrize(
    ("name", "cn", "orgs"),
    [
        ("admin", "podium-admin", ["system:masters"]),
        ("kube-controller-manager", "system:kube-controller-manager", []),
        ("kube-scheduler", "system:kube-scheduler", []),
        ("node", "system:node:n1", ["system:nodes"]),
    ],
)
def test_client_identities_are_what_rbac_expects(tmp_path: Path, name: str, cn: str, orgs: list[str]) -> None:
    pki.ensure_pki(tmp_path, launcher.cert_specs("n1", "127.96.0.0/16"))
    subject = load(tmp_path / f"{name}.crt").subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [cn]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == orgs
    assert (tmp_path / f"{name}.key").stat().st_mode & 0o077 == 0


def test_existing_pki_is_kept(tmp_path: Path) -> None:
    specs = launcher.cert_specs("podium-node", "127.96.0.0/16")
    pki.ensure_pki(tmp_path, specs)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pki.ensure_pki(tmp_path, specs)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_service_cidr_must_be_loopback() -> None:
    assert launcher.service_ip("127.96.0.0/16") == "127.96.0.1"
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        launcher.service_ip("10.96.0.0/12")


def test_remembered_ports_are_kept_unless_taken() -> None:
    previous = {"etcd": 41001, "etcd-peer": 41002, "kube-apiserver": 41003, "kube-controller-manager": 41004}
    ports = launcher.assign_ports(previous, is_free=lambda p: p != 41003)
    assert ports["etcd"] == 41001 and ports["etcd-peer"] == 41002 and ports["kube-controller-manager"] == 41004
    assert ports["kube-apiserver"] != 41003
    assert len(set(ports.values())) == len(launcher.PORT_NAMES)


def test_commands_carry_the_flags_the_cluster_depends_on(tmp_path: Path) -> None:
    state = launcher.State(ports=launcher.assign_ports({}), with_node=True)
    cmds = launcher.commands(launcher.Paths(tmp_path), state, Path("/bins"))
    assert list(cmds) == list(launcher.COMPONENTS)
    api = cmds["kube-apiserver"]
    assert "--authorization-mode=Node,RBAC" in api
    assert "--service-cluster-ip-range=127.96.0.0/16" in api
    assert "--bind-address=127.0.0.1" in api
    node = cmds["node"]
    assert node[node.index("--api-url") + 1] == state.api_url
    assert node[node.index("--kubeconfig") + 1] == str(tmp_path / "node.kubeconfig")
    assert "node" not in launcher.commands(launcher.Paths(tmp_path), launcher.State(ports=state.ports), Path("/b"))


def test_stop_group_kills_children_and_term_ignorers(tmp_path: Path) -> None:
    # A leader with a child that ignores SIGTERM: both must be gone after stop_group.
    script = "trap '' TERM; sleep 300 & trap '' TERM; wait"
    pid = processes.spawn(["bash", "-c", script], tmp_path / "log")
    deadline = time.monotonic() + 5
    while len(processes.group_members(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes.group_members(pid)) >= 2
    killed = processes.stop_group(pid, grace=0.5)
    assert killed
    assert processes.group_members(pid) == []
    assert not processes.alive(pid)


def test_spawned_process_logs_to_its_file(tmp_path: Path) -> None:
    pid = processes.spawn(["bash", "-c", "echo hello-from-child"], tmp_path / "logs" / "c.log")
    deadline = time.monotonic() + 5
    while processes.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "hello-from-child" in (tmp_path / "logs" / "c.log").read_text()


def test_down_never_signals_a_process_that_is_not_the_clusters(tmp_path: Path) -> None:
    # A pid remembered in state.json that now belongs to someone else (pid reuse) must survive `down`.
    local = launcher.LocalCluster(tmp_path / "c")
    stranger = processes.spawn(["sleep", "30"], tmp_path / "stranger.log")
    ours = processes.spawn(["bash", "-c", "sleep 30; true", str(local.paths.root)], tmp_path / "ours.log")
    try:
        deadline = time.monotonic() + 5  # a loaded machine may show the new command line a moment late
        while not local.owns(ours) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert local.owns(ours), (processes.alive(ours), processes.cmdline(ours))
        assert not local.owns(stranger)
        local.paths.root.mkdir(parents=True)
        local.save_state(launcher.State(ports={}, pids={"etcd": stranger, "kube-apiserver": ours}))
        assert local.down(log=lambda _m: None)
        assert processes.alive(stranger)
        assert not processes.alive(ours)
    finally:
        processes.stop_group(stranger, grace=1)
        processes.stop_group(ours, grace=1)


def test_node_cert_serves_on_loopback_and_is_reissued_when_it_did_not(tmp_path: Path) -> None:
    # An older cluster directory holds a client-only node cert; `up` must upgrade it, signed by the same CA.
    specs = launcher.cert_specs("n1", "127.96.0.0/16")
    node = next(s for s in specs if s.name == "node")
    ca = pki.ensure_pki(tmp_path, [pki.CertSpec("node", node.common_name, node.organizations)])
    old = (tmp_path / "node.crt").read_bytes()
    pki.ensure_pki(tmp_path, specs)
    cert = load(tmp_path / "node.crt")
    assert (tmp_path / "node.crt").read_bytes() != old
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    cert.verify_directly_issued_by(ca.cert)


def processes_mentioning(text: str) -> list[int]:
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if processes.alive(pid) and text in processes.cmdline(pid)]


def fake_bins(directory: Path, etcd_script: str) -> Path:
    directory.mkdir()
    for name in build.BINARIES:
        path = directory / name
        path.write_text(f"#!/bin/bash\n{etcd_script if name == 'etcd' else 'exit 0'}\n")
        path.chmod(0o755)
    return directory


def test_up_names_the_log_when_a_component_dies(tmp_path: Path) -> None:
    bins = fake_bins(tmp_path / "bins", "echo 'etcd: listen tcp: address already in use' >&2; exit 1")
    local = launcher.LocalCluster(tmp_path / "c", bins=bins)
    with pytest.raises(launcher.ClusterError) as caught:
        local.up(with_node=False, timeout=20, log=lambda _m: None)
    message = str(caught.value)
    assert "etcd exited during start-up" in message
    assert str(local.paths.log("etcd")) in message
    assert "address already in use" in message
    state = local.load_state()
    assert state is not None and state.pids == {}


def test_up_times_out_with_the_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    # A leader with a child: both must be gone afterwards, not just the pid the launcher knows.
    bins = fake_bins(tmp_path / "bins", 'sleep 60 & echo "waiting for quorum, pids $$ $!"; wait')
    local = launcher.LocalCluster(tmp_path / "c", bins=bins)
    started = time.monotonic()
    with pytest.raises(launcher.ClusterError, match="etcd not ready in time") as caught:
        local.up(with_node=False, timeout=1.5, log=lambda _m: None)
    assert time.monotonic() - started < 20
    assert "waiting for quorum" in str(caught.value)
    line = next(x for x in local.paths.log("etcd").read_text().splitlines() if "pids" in x)
    leader, child = (int(p) for p in line.split("pids ")[1].split())
    assert not processes.alive(leader) and not processes.alive(child)
    assert processes_mentioning(str(local.paths.root)) == []


def test_a_large_log_is_rotated_once_at_start(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"old\n" * (processes.MAX_LOG_BYTES // 4 + 1))
    pid = processes.spawn(["true"], log)
    processes.stop_group(pid, grace=2)
    assert (tmp_path / "big.log.1").stat().st_size > processes.MAX_LOG_BYTES
    assert log.stat().st_size < 1024 and "starting: true" in log.read_text()


def test_loopback_ranges_are_stable_per_directory_and_differ_between_checkouts(tmp_path: Path) -> None:
    ranges = {launcher.loopback_ranges(tmp_path / f"checkout-{i}") for i in range(8)}
    assert launcher.loopback_ranges(tmp_path / "checkout-0") == launcher.loopback_ranges(tmp_path / "checkout-0")
    assert len(ranges) > 1  # a dev cluster and a CI clone side by side do not share addresses
    for service, pods in ranges:
        assert ipaddress.ip_network(service).subnet_of(ipaddress.ip_network("127.0.0.0/8"))
        assert ipaddress.ip_network(pods).subnet_of(ipaddress.ip_network("127.0.0.0/8"))
        assert not ipaddress.ip_network(service).overlaps(ipaddress.ip_network(pods))
