"""The local Kubernetes cluster for tests/cluster: real etcd, kube-apiserver, controller-manager, scheduler.

The session fixture reuses a cluster that already runs in the cluster directory (so a developer's
`make cluster-up` makes test runs fast) and stops only a cluster it started itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from kubernetes import client, config

from podium_localcluster.launcher import LocalCluster, State, child_env
from podium_localcluster.redis_server import RedisServer

from .helpers import Operator, apply_crds, module_namespace, running_operator

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ClusterHandle:
    dir: Path
    kubeconfig: Path
    bin: Path
    api_url: str
    state: State | None  # None: a cluster of PODIUM_CLUSTER=current or kind, not the local one
    env: dict[str, str]

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl as admin; never raises on a non-zero exit (tests assert on it)."""
        return subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )


def _want_node() -> bool | None:
    raw = os.environ.get("PODIUM_CLUSTER_NODE")
    return None if raw is None else raw.lower() in ("1", "true", "yes")


def external_cluster(mode: str, workdir: Path) -> ClusterHandle:
    """PODIUM_CLUSTER=current (the current kube-context) or kind (scripts/kind.sh's cluster), used as it is: nothing
    is started or stopped. kubectl and helm are the ones on PATH, else the local cluster's build (docs/clusters.md)."""
    if mode == "kind":
        made = subprocess.run(
            ["bash", str(ROOT / "scripts" / "kind.sh"), "kubeconfig"], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            pytest.fail(f"PODIUM_CLUSTER=kind: no kind cluster ({made.stderr.strip()}); run scripts/kind.sh up")
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(made.stdout)
    else:
        kubeconfig = Path((os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(os.pathsep)[0])
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    built = Path.home() / ".cache" / "podium" / "k8s-v1.34.4" / "bin"
    for tool in ("kubectl", "helm"):
        found = shutil.which(tool) or (str(built / tool) if (built / tool).exists() else None)
        if found is None:
            pytest.fail(f"PODIUM_CLUSTER={mode} needs {tool} on PATH")
        (bin_dir / tool).unlink(missing_ok=True)
        (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    server = subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "config", "view", "--minify", "-o",
         "jsonpath={.clusters[0].cluster.server}"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if server.returncode != 0 or not server.stdout:
        pytest.fail(f"PODIUM_CLUSTER={mode}: no current cluster in {kubeconfig}: {server.stderr.strip()}")
    return ClusterHandle(workdir, kubeconfig, bin_dir, server.stdout, None, env)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    mode = os.environ.get("PODIUM_CLUSTER", "local")
    if mode in ("current", "kind"):
        yield external_cluster(mode, tmp_path_factory.mktemp("cluster"))
        return
    if mode != "local":
        pytest.fail(f"PODIUM_CLUSTER={mode}: expected local, current or kind")
    # A cluster of the tests' own (not the demo's .podium/): the demo's operator watches every namespace and would
    # reconcile the tests' objects too. Different directories get different loopback ranges, so both can run.
    root = Path(os.environ.get("PODIUM_CLUSTER_DIR", ROOT / ".podium-test"))
    local = LocalCluster(root)
    want_node = _want_node()
    previous = local.load_state()
    reuse = previous is not None and local.is_up(previous)
    state = local.up(with_node=want_node, timeout=300, log=lambda _msg: None)
    env = child_env(state)
    env["KUBECONFIG"] = str(local.paths.kubeconfig)
    yield ClusterHandle(local.paths.root, local.paths.kubeconfig, local.paths.bin, state.api_url, state, env)
    if not reuse and os.environ.get("PODIUM_KEEP_CLUSTER", "") not in ("1", "true", "yes"):
        local.down(log=lambda _msg: None)


@pytest.fixture(scope="session")
def kube_client(cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def namespace(cluster: ClusterHandle) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards (without waiting for finalisation)."""
    name = f"podium-test-{uuid.uuid4().hex[:8]}"
    created = cluster.kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def crds(cluster: ClusterHandle) -> None:
    """The project's CRDs applied and Established (once per module)."""
    apply_crds(cluster)


@pytest.fixture(scope="module")
def ns(cluster: ClusterHandle, crds: None, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test module's own (named after the module), with the CRDs applied; deleted after it."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    yield from module_namespace(cluster, f"podium-{module}"[:50])


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterHandle, ns: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """`podium operator` as a local process watching the module's namespace, stopped after the module."""
    yield from running_operator(cluster, ns, redis_server, tmp_path_factory)


@pytest.fixture(scope="module")
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the test Redis, as an administrator would use it."""
    r = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    yield r
    r.close()
