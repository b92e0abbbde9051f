"""Bring the local Kubernetes control plane up and down: etcd, kube-apiserver, controller-manager, scheduler
and (when present) the Podium node agent, all as local processes on loopback.

Layout of the cluster directory (default ``.podium``)::

    state.json            ports, pids, service CIDR: remembered across `up`s
    pki/                  CA, serving/client certs, service-account key pair
    kubeconfig            admin (system:masters); <component>.kubeconfig for the others
    bin/kubectl, bin/helm symlinks to the pinned binaries
    logs/<component>.log  one log per process
    etcd/, node/          data
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import ipaddress
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from podium_localcluster import build, kubeconfig, pki, processes

DEFAULT_SERVICE_CIDR = "127.96.0.0/16"
DEFAULT_POD_CIDR = "127.64.0.0/16"
DEFAULT_NODE_NAME = "podium-node"
HOST = "127.0.0.1"
# Start order; `down` stops in reverse so nothing loses its API server while still running.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node")
PORT_NAMES = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class ClusterError(RuntimeError):
    """A component failed to start or become ready; the message names the log to read."""


@dataclass
class State:
    ports: dict[str, int]
    service_cidr: str = DEFAULT_SERVICE_CIDR
    pod_cidr: str = DEFAULT_POD_CIDR
    node_name: str = DEFAULT_NODE_NAME
    pids: dict[str, int] = field(default_factory=dict)
    with_node: bool = False

    @property
    def api_url(self) -> str:
        return f"https://{HOST}:{self.ports['kube-apiserver']}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> State:
        raw = json.loads(text)
        return cls(
            ports={str(k): int(v) for k, v in raw["ports"].items()},
            service_cidr=str(raw.get("service_cidr", DEFAULT_SERVICE_CIDR)),
            pod_cidr=str(raw.get("pod_cidr", DEFAULT_POD_CIDR)),
            node_name=str(raw.get("node_name", DEFAULT_NODE_NAME)),
            pids={str(k): int(v) for k, v in raw.get("pids", {}).items()},
            with_node=bool(raw.get("with_node", False)),
        )


def loopback_ranges(directory: Path) -> tuple[str, str]:
    """(service CIDR, pod CIDR) for a cluster kept in ``directory``.

    Derived from the directory so that two clusters on one machine (two checkouts, a CI clone beside a dev
    cluster) never hand out the same ClusterIPs or pod addresses: both would bind them on the host's loopback.
    """
    slot = zlib.crc32(str(directory.resolve()).encode()) % 16
    return f"127.{96 + slot}.0.0/16", f"127.{64 + slot}.0.0/16"


def service_ip(cidr: str) -> str:
    """The first address of the service CIDR: the ClusterIP of the `kubernetes` service."""
    network = ipaddress.ip_network(cidr, strict=True)
    if not network.is_loopback:
        raise ValueError(f"service CIDR {cidr} must be inside 127.0.0.0/8: the local cluster never leaves loopback")
    return str(network.network_address + 1)


def cert_specs(node_name: str, service_cidr: str) -> list[pki.CertSpec]:
    return [
        pki.CertSpec(
            "apiserver",
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=(HOST, service_ip(service_cidr)),
            server=True,
            client=False,
        ),
        pki.CertSpec("admin", "podium-admin", organizations=("system:masters",)),
        pki.CertSpec("kube-controller-manager", "system:kube-controller-manager"),
        pki.CertSpec("kube-scheduler", "system:kube-scheduler"),
        # Client towards the API server, and serving cert of the node's kubelet endpoint (kubectl logs): the
        # API server checks it against --kubelet-certificate-authority.
        pki.CertSpec(
            "node",
            f"system:node:{node_name}",
            organizations=("system:nodes",),
            dns_names=(node_name,),
            ip_addresses=(HOST,),
            server=True,
        ),
        # The API server's identity towards the node agent (logs/exec), should it serve the kubelet API.
        pki.CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", organizations=("system:masters",)),
    ]


def free_port(taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        if port not in taken:
            return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def assign_ports(previous: dict[str, int], is_free: Callable[[int], bool] = port_is_free) -> dict[str, int]:
    """Keep every remembered port that is still free; pick new free ones for the rest."""
    ports: dict[str, int] = {}
    for name in PORT_NAMES:
        old = previous.get(name)
        if old is not None and old not in ports.values() and is_free(old):
            ports[name] = old
        else:
            ports[name] = free_port(set(ports.values()))
    return ports


class Paths:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.bin = self.root / "bin"
        self.state = self.root / "state.json"
        self.lock = self.root / ".lock"
        self.kubeconfig = self.root / "kubeconfig"
        self.etcd_data = self.root / "etcd"
        self.node_state = self.root / "node"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / f"{name}.kubeconfig"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


def node_command() -> list[str]:
    script = Path(sys.executable).parent / "podium-cluster"
    return [str(script), "node"] if script.exists() else [sys.executable, "-m", "podium_localcluster", "node"]


def node_available() -> bool:
    return importlib.util.find_spec("podium_localcluster.node") is not None


def commands(paths: Paths, state: State, bins: Path) -> dict[str, list[str]]:
    """The exact command line of every component (pure: no I/O), in start order."""
    p = state.ports
    etcd_url = f"http://{HOST}:{p['etcd']}"
    peer_url = f"http://{HOST}:{p['etcd-peer']}"
    k = paths.pki
    cmds: dict[str, list[str]] = {
        # Plain http on loopback: only local processes can reach it, and it spares a TLS handshake per call.
        "etcd": [
            str(bins / "etcd"),
            "--name=podium",
            f"--data-dir={paths.etcd_data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=podium={peer_url}",
            "--initial-cluster-state=new",
            # A throwaway dev cluster on a shared disk: fsync latency dominates start-up and writes otherwise.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            str(bins / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={HOST}",
            f"--advertise-address={HOST}",
            f"--secure-port={p['kube-apiserver']}",
            f"--tls-cert-file={k / 'apiserver.crt'}",
            f"--tls-private-key-file={k / 'apiserver.key'}",
            f"--client-ca-file={k / 'ca.crt'}",
            f"--kubelet-client-certificate={k / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={k / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={k / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={k / 'sa.pub'}",
            f"--service-account-signing-key-file={k / 'sa.key'}",
            f"--service-cluster-ip-range={state.service_cidr}",
            # Kubernetes refuses loopback Endpoints, and the `kubernetes` service would need one.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--cert-dir={k / 'kube-apiserver'}",
            "--profiling=false",
        ],
        "kube-controller-manager": [
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={paths.component_kubeconfig('kube-controller-manager')}",
            f"--authentication-kubeconfig={paths.component_kubeconfig('kube-controller-manager')}",
            f"--authorization-kubeconfig={paths.component_kubeconfig('kube-controller-manager')}",
            # No front proxy here: skip reading its request-header CA, which would otherwise be logged as missing.
            "--authentication-skip-lookup=true",
            f"--bind-address={HOST}",
            f"--secure-port={p['kube-controller-manager']}",
            f"--cert-dir={k / 'kube-controller-manager'}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={k / 'sa.key'}",
            f"--root-ca-file={k / 'ca.crt'}",
            f"--cluster-signing-cert-file={k / 'ca.crt'}",
            f"--cluster-signing-key-file={k / 'ca.key'}",
            f"--service-cluster-ip-range={state.service_cidr}",
            # No pod CIDRs here: pods are local processes, so node IPAM has nothing to allocate.
            "--controllers=*,-nodeipam",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "kube-scheduler": [
            str(bins / "kube-scheduler"),
            f"--kubeconfig={paths.component_kubeconfig('kube-scheduler')}",
            f"--authentication-kubeconfig={paths.component_kubeconfig('kube-scheduler')}",
            f"--authorization-kubeconfig={paths.component_kubeconfig('kube-scheduler')}",
            # No front proxy here: skip reading its request-header CA, which would otherwise be logged as missing.
            "--authentication-skip-lookup=true",
            f"--bind-address={HOST}",
            f"--secure-port={p['kube-scheduler']}",
            f"--cert-dir={k / 'kube-scheduler'}",
            "--leader-elect=false",
            "--profiling=false",
        ],
    }
    if state.with_node:
        cmds["node"] = [
            *node_command(),
            "--kubeconfig",
            str(paths.component_kubeconfig("node")),
            "--name",
            state.node_name,
            "--state-dir",
            str(paths.node_state),
            "--service-cidr",
            state.service_cidr,
            "--pod-cidr",
            state.pod_cidr,
            "--api-url",
            state.api_url,
        ]
    return cmds


def child_env(state: State) -> dict[str, str]:
    env = dict(os.environ)
    # A proxy configured for the outside world must never see loopback API traffic.
    extra = f"{HOST},localhost,{state.service_cidr}"
    for var in ("NO_PROXY", "no_proxy"):
        env[var] = f"{env[var]},{extra}" if env.get(var) else extra
    return env


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class LocalCluster:
    def __init__(self, root: Path | str = ".podium", bins: Path | None = None) -> None:
        self.paths = Paths(Path(root))
        self.bins = bins or build.bin_dir()

    # -- state -------------------------------------------------------------------------------------------
    def load_state(self) -> State | None:
        try:
            return State.from_json(self.paths.state.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:
            raise ClusterError(f"{self.paths.state} is corrupt ({exc}); run `podium-cluster down` to reset") from exc

    def save_state(self, state: State) -> None:
        tmp = self.paths.state.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.paths.state)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # Two `up`s at once (two terminals, parallel test sessions) must not start two etcds on one data dir.
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with self.paths.lock.open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- probes ------------------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.paths.pki / "admin.crt"), str(self.paths.pki / "admin.key"))
        return ctx

    def api_get(self, state: State, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET ``path`` on the API server as admin; (status, body), status 0 if unreachable."""
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl_context())
        )
        try:
            with opener.open(state.api_url + path, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def owns(self, pid: int) -> bool:
        """True if ``pid`` runs one of this cluster's components.

        Pids in state.json may have been recycled since (reboot, long-stopped cluster): every component's command
        line names the cluster directory, so an unrelated process is never mistaken for ours or signalled.
        """
        return processes.alive(pid) and str(self.paths.root) in processes.cmdline(pid)

    def running(self, state: State) -> dict[str, bool]:
        return {name: self.owns(pid) for name, pid in state.pids.items()}

    def is_up(self, state: State) -> bool:
        expected = [c for c in COMPONENTS if c != "node" or state.with_node]
        alive = self.running(state)
        if not all(alive.get(c, False) for c in expected):
            return False
        return self.api_get(state, "/readyz")[0] == 200

    # -- up ----------------------------------------------------------------------------------------------
    def up(self, *, with_node: bool | None = None, timeout: float = 120.0, log: Callable[[str], None] = print) -> State:
        """Start the cluster, or return at once if it already runs.

        A running cluster is never restarted as a whole: one with a node also serves a caller that asked for none
        (other users may depend on that node); components that died (or a node asked for and not yet running) are
        started again beside the live ones, with the same ports, data and certificates. If that fails, only what
        this call started is stopped. With nothing alive, everything starts from the remembered state.
        """
        want_node = node_available() if with_node is None else with_node
        if want_node and not node_available():
            raise ClusterError("the node agent (podium_localcluster.node) is not installed; use --no-node")
        with self.locked():
            previous = self.load_state()
            if previous is not None and any(self.running(previous).values()):
                return self._repair(previous, want_node, timeout, log)
            if previous is not None:
                self._stop(previous, log)
            bins = build.ensure_binaries(self.bins)
            service_cidr, pod_cidr = loopback_ranges(self.paths.root)
            state = State(
                ports=assign_ports(previous.ports if previous else {}),
                service_cidr=previous.service_cidr if previous else service_cidr,
                pod_cidr=previous.pod_cidr if previous else pod_cidr,
                node_name=previous.node_name if previous else DEFAULT_NODE_NAME,
                with_node=want_node,
            )
            try:
                self._start(state, bins, timeout, log)
            except BaseException:
                # Never leave half a cluster behind: the next `up` starts from a clean slate of processes.
                self._stop(state, log)
                raise
            return state

    def _prepare(self, state: State, bins: Path) -> None:
        p = self.paths
        for d in (p.logs, p.bin, p.etcd_data, p.node_state):
            d.mkdir(parents=True, exist_ok=True)
        p.etcd_data.chmod(0o700)  # etcd refuses a data dir others can read
        pki.ensure_pki(p.pki, cert_specs(state.node_name, state.service_cidr))
        kubeconfig.write(p.kubeconfig, state.api_url, p.pki, "admin")
        for identity in ("kube-controller-manager", "kube-scheduler", "node"):
            kubeconfig.write(p.component_kubeconfig(identity), state.api_url, p.pki, identity)
        for tool in ("kubectl", "helm"):
            link, tmp = p.bin / tool, p.bin / f".{tool}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(bins / tool)
            tmp.replace(link)  # atomic: `.podium/bin/kubectl` never goes missing while in use

    def _repair(self, state: State, want_node: bool, timeout: float, log: Callable[[str], None]) -> State:
        alive = self.running(state)
        had_node = state.with_node
        state.with_node = had_node or want_node
        dead = tuple(c for c in COMPONENTS if (c != "node" or state.with_node) and not alive.get(c, False))
        if not dead:
            self._wait_ready("kube-apiserver", state, time.monotonic() + timeout)
            return state
        log(f"restarting {', '.join(dead)} beside the running {', '.join(c for c in alive if alive[c])}")
        for name in dead:
            # A dead leader may leave children in its group (the node's pods): they go before a new one starts.
            self._stop_one(state, name, log)
        try:
            self._start(state, build.ensure_binaries(self.bins), timeout, log, only=dead)
        except BaseException:
            # What ran before this call keeps running: take back only what this call started.
            for name in dead:
                pid = state.pids.pop(name, None)
                if pid is not None:
                    processes.stop_group(pid)
            state.with_node = had_node
            self.save_state(state)
            raise
        return state

    def _start(
        self, state: State, bins: Path, timeout: float, log: Callable[[str], None], only: tuple[str, ...] = COMPONENTS
    ) -> None:
        self._prepare(state, bins)
        cmds = {name: args for name, args in commands(self.paths, state, bins).items() if name in only}
        env = child_env(state)
        started = time.monotonic()
        deadline = started + timeout
        for name, args in cmds.items():
            state.pids[name] = processes.spawn(args, self.paths.log(name), env=env, cwd=self.paths.root)
            self.save_state(state)
            self._wait_ready(name, state, deadline)
            log(f"{name} ready ({time.monotonic() - started:.1f}s)")

    def _wait_ready(self, name: str, state: State, deadline: float) -> None:
        check: Callable[[], bool]
        if name == "etcd":
            check = lambda: _http_ok(f"http://{HOST}:{state.ports['etcd']}/health")  # noqa: E731
        elif name == "kube-apiserver":
            check = lambda: self.api_get(state, "/readyz")[0] == 200  # noqa: E731
        elif name in ("kube-controller-manager", "kube-scheduler"):
            check = lambda: _https_healthz(state.ports[name])  # noqa: E731
        else:
            check = lambda: self.node_ready(state)  # noqa: E731
        while True:
            if not processes.alive(state.pids[name]):
                raise ClusterError(
                    f"{name} exited during start-up; see {self.paths.log(name)}:\n{tail(self.paths.log(name))}"
                )
            if check():
                return
            if time.monotonic() > deadline:
                what = f"node {state.node_name} not Ready" if name == "node" else f"{name} not ready"
                raise ClusterError(f"{what} in time; see {self.paths.log(name)}:\n{tail(self.paths.log(name))}")
            time.sleep(0.2)

    def node_ready(self, state: State) -> bool:
        status, body = self.api_get(state, f"/api/v1/nodes/{state.node_name}")
        if status != 200:
            return False
        node: dict[str, Any] = json.loads(body)
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    # -- down / status -----------------------------------------------------------------------------------
    def down(self, log: Callable[[str], None] = print) -> bool:
        """Stop every component; True if something was running. Data and certs stay for the next `up`."""
        with self.locked():
            state = self.load_state()
            if state is None:
                return False
            was_running = any(self.running(state).values())
            self._stop(state, log)
            return was_running

    def _stop(self, state: State, log: Callable[[str], None]) -> None:
        for name in reversed(COMPONENTS):
            self._stop_one(state, name, log)

    def _stop_one(self, state: State, name: str, log: Callable[[str], None]) -> None:
        pid = state.pids.get(name)
        if pid is None:
            return
        leader_recycled = processes.alive(pid) and not self.owns(pid)
        if processes.group_members(pid) and not leader_recycled:
            killed = processes.stop_group(pid)
            log(f"stopped {name} (pid {pid}{', killed after grace period' if killed else ''})")
        del state.pids[name]
        self.save_state(state)

    def status(self) -> dict[str, Any]:
        state = self.load_state()
        if state is None:
            return {"state": "absent", "dir": str(self.paths.root)}
        alive = self.running(state)
        ready = self.api_get(state, "/readyz")[0] == 200 if alive.get("kube-apiserver") else False
        return {
            "state": "running" if self.is_up(state) else ("degraded" if any(alive.values()) else "stopped"),
            "dir": str(self.paths.root),
            "api_url": state.api_url,
            "api_ready": ready,
            "kubeconfig": str(self.paths.kubeconfig),
            "components": {
                name: {"pid": pid, "alive": alive.get(name, False), "log": str(self.paths.log(name))}
                for name, pid in state.pids.items()
            },
            "node": state.node_name if state.with_node else None,
            "node_ready": self.node_ready(state) if state.with_node and ready else None,
            "ports": state.ports,
            "service_cidr": state.service_cidr,
            "pod_cidr": state.pod_cidr,
        }

    def env_lines(self) -> list[str]:
        return [f"export KUBECONFIG={self.paths.kubeconfig}", f"export PATH={self.paths.bin}:$PATH"]


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _https_healthz(port: int) -> bool:
    # Controller-manager and scheduler serve /healthz unauthenticated with a self-signed cert of their own.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(f"https://{HOST}:{port}/healthz", timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False
