"""`podium node`: init containers and startup probes, on the real local cluster (and the pure status they report)."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from podium_localcluster.node.status import ContainerState, now, pod_status, restore_counts
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import NODE_WAIT, PY, apply

# Where the pods below mount their emptyDir: a private mount inside each container, only an empty directory on
# the host.
DATA = "/tmp/podium-node-init-test/data"


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def bare_pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def create_pod(cluster: ClusterHandle, namespace: str, core: client.CoreV1Api, pod: dict[str, Any]) -> None:
    # A bare Pod is refused until the namespace's default ServiceAccount exists (created by a controller).
    wait_for(
        "default serviceaccount",
        lambda: core.read_namespaced_service_account("default", namespace),
        **NODE_WAIT,
    )
    apply(cluster, namespace, pod)


def printed_status(cluster: ClusterHandle, namespace: str, name: str) -> str:
    """The STATUS column of `kubectl get pod` (the API server's printer, from what the node reports)."""
    out = cluster.kubectl("get", "pod", name, "-n", namespace, "--no-headers")
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[2]


def condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition:
    return next(c for c in pod.status.conditions or [] if c.type == kind)


def py(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "python:3.12", "command": [PY, "-c", script], **extra}


def test_init_containers_run_in_order_and_share_volumes_with_main(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api
) -> None:
    mount = [{"name": "data", "mountPath": DATA}]
    first = f"import time; time.sleep(4); open('{DATA}/out.txt', 'w').write('first\\n'); print('first wrote')"
    # Fails unless the first one finished before it started.
    second = f"open('{DATA}/out.txt', 'a').write(open('{DATA}/out.txt').read().replace('first', 'second'))"
    # Crashes (a restart the test would see) if it started before the init containers wrote the file.
    serve = (
        f"import os, runpy, sys; assert os.path.exists('{DATA}/out.txt'); "
        f"sys.argv = ['http.server', '8000', '--directory', '{DATA}']; "
        "runpy.run_module('http.server', run_name='__main__')"
    )
    main = py("web", serve, volumeMounts=mount, readinessProbe={"tcpSocket": {"port": 8000}, "periodSeconds": 1})
    spec = {
        "terminationGracePeriodSeconds": 2,
        "volumes": [{"name": "data", "emptyDir": {}}],
        "initContainers": [py("first", first, volumeMounts=mount), py("second", second, volumeMounts=mount)],
        "containers": [main],
    }
    create_pod(cluster, namespace, core, bare_pod("inited", spec))

    def initializing() -> client.V1Pod | None:
        p = core.read_namespaced_pod("inited", namespace)
        ics = p.status.init_container_statuses
        return p if ics and ics[0].state.running else None

    during = wait_for("first init container running", initializing, **NODE_WAIT)
    assert during.status.phase == "Pending"
    init_cond = condition(during, "Initialized")
    assert (init_cond.status, init_cond.reason) == ("False", "ContainersNotInitialized")
    assert during.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert printed_status(cluster, namespace, "inited") == "Init:0/2"

    def ready() -> client.V1Pod | None:
        p = core.read_namespaced_pod("inited", namespace)
        cs = p.status.container_statuses
        return p if cs and cs[0].ready else None

    pod = wait_for("main container ready", ready, **NODE_WAIT)
    assert pod.status.phase == "Running"
    assert condition(pod, "Initialized").status == "True"
    assert printed_status(cluster, namespace, "inited") == "Running"
    for ics in pod.status.init_container_statuses:
        assert ics.state.terminated.exit_code == 0 and ics.ready and ics.restart_count == 0, ics
    assert pod.status.container_statuses[0].restart_count == 0
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8000/out.txt", timeout=5) as r:
        assert r.read() == b"first\nsecond\n"
    logs = cluster.kubectl("logs", "-n", namespace, "inited", "-c", "first")
    assert logs.returncode == 0 and logs.stdout.strip() == "first wrote", (logs.stdout, logs.stderr)


def test_failed_init_container_fails_the_pod_when_it_never_restarts(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api
) -> None:
    spec = {
        "restartPolicy": "Never",
        "initContainers": [py("setup", "import sys; sys.exit(7)")],
        "containers": [py("main", "print('main ran')")],
    }
    create_pod(cluster, namespace, core, bare_pod("badinit", spec))

    def failed() -> client.V1Pod | None:
        p = core.read_namespaced_pod("badinit", namespace)
        return p if p.status.phase == "Failed" else None

    pod = wait_for("pod Failed", failed, **NODE_WAIT)
    term = pod.status.init_container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (7, "Error")
    main = pod.status.container_statuses[0]
    assert main.state.waiting.reason == "PodInitializing" and not main.started
    assert condition(pod, "Initialized").status == "False"
    assert printed_status(cluster, namespace, "badinit") == "Init:Error"


def test_failed_init_container_is_retried_and_main_never_starts(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api
) -> None:
    spec = {
        "restartPolicy": "Always",
        "initContainers": [py("setup", "import sys; print('trying'); sys.exit(3)")],
        "containers": [py("main", "import time; time.sleep(600)")],
    }
    create_pod(cluster, namespace, core, bare_pod("retryinit", spec))

    def retried_twice() -> client.V1Pod | None:
        p = core.read_namespaced_pod("retryinit", namespace)
        ics = p.status.init_container_statuses
        return p if ics and ics[0].restart_count >= 2 else None

    # First retry at once, the second after the node's 10 s back-off.
    pod = wait_for("init container restarted twice", retried_twice, timeout=60, ignore=NODE_WAIT["ignore"])
    assert pod.status.phase == "Pending"
    setup = pod.status.init_container_statuses[0]
    assert setup.last_state.terminated.exit_code == 3
    main = pod.status.container_statuses[0]
    assert main.state.waiting.reason == "PodInitializing" and main.restart_count == 0 and not main.started
    assert printed_status(cluster, namespace, "retryinit") in ("Init:CrashLoopBackOff", "Init:Error", "Init:0/1")
    logs = cluster.kubectl("logs", "-n", namespace, "retryinit", "-c", "setup").stdout
    assert logs.count("trying") >= 3, logs  # appended across attempts


# Serves 500 until it has run SLOW seconds, then 200; logs every request so the test sees which probes ran when.
SLOW = 6
SLOW_SERVER = f"""
import http.server, sys, time
t0 = time.time()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = time.time() - t0 > {SLOW}
        print(self.path, ok, flush=True)
        self.send_response(200 if ok else 500)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8000), H).serve_forever()
"""


def test_startup_probe_holds_back_liveness_and_readiness_until_it_passes(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api
) -> None:
    probe = {"periodSeconds": 1, "timeoutSeconds": 1}
    main = py(
        "slow",
        SLOW_SERVER,
        startupProbe={"httpGet": {"path": "/started", "port": 8000}, "failureThreshold": 30, **probe},
        # Would kill the container at its first failure if it ran before the startup probe passed.
        livenessProbe={"httpGet": {"path": "/healthz", "port": 8000}, "failureThreshold": 1, **probe},
    )
    create_pod(
        cluster, namespace, core, bare_pod("slowstart", {"terminationGracePeriodSeconds": 2, "containers": [main]})
    )

    def running() -> client.V1ContainerStatus | None:
        cs = core.read_namespaced_pod("slowstart", namespace).status.container_statuses
        return cs[0] if cs and cs[0].state.running else None

    first = wait_for("container running", running, **NODE_WAIT)
    t_run = time.monotonic()
    assert not first.started and not first.ready
    while time.monotonic() - t_run < SLOW - 3:
        cs = core.read_namespaced_pod("slowstart", namespace).status.container_statuses[0]
        assert not cs.ready and not cs.started and cs.restart_count == 0 and cs.state.running, cs
        time.sleep(0.5)

    def ready() -> client.V1ContainerStatus | None:
        cs = core.read_namespaced_pod("slowstart", namespace).status.container_statuses
        return cs[0] if cs and cs[0].ready else None

    done = wait_for("ready after the startup probe passed", ready, timeout=30, ignore=NODE_WAIT["ignore"])
    assert done.started and done.restart_count == 0
    time.sleep(3)  # liveness now runs and passes: still no restart
    assert core.read_namespaced_pod("slowstart", namespace).status.container_statuses[0].restart_count == 0
    lines = cluster.kubectl("logs", "-n", namespace, "slowstart").stdout.splitlines()
    assert "/started False" in lines and "/healthz True" in lines, lines
    first_pass = lines.index("/started True")
    assert all(not line.startswith("/healthz") for line in lines[:first_pass]), lines
    assert not any(line.startswith("/started") for line in lines[first_pass + 1 :]), lines


def test_startup_probe_that_never_passes_restarts_the_container(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api
) -> None:
    main = py(
        "stuck",
        "import time; time.sleep(600)",
        # Nothing listens there: every attempt fails.
        startupProbe={"tcpSocket": {"port": 8000}, "periodSeconds": 1, "failureThreshold": 2},
    )
    create_pod(cluster, namespace, core, bare_pod("stuck", {"terminationGracePeriodSeconds": 1, "containers": [main]}))

    def restarted() -> client.V1ContainerStatus | None:
        cs = core.read_namespaced_pod("stuck", namespace).status.container_statuses
        return cs[0] if cs and cs[0].restart_count >= 1 else None

    cs = wait_for("restart after the startup probe failed", restarted, timeout=40, ignore=NODE_WAIT["ignore"])
    assert cs.last_state.terminated.message == "startup probe failed"
    assert not cs.ready


# ---- the status the node reports, without a cluster ----------------------------------------------------------------


def test_status_while_initializing_and_after_an_init_failure() -> None:
    t = now()
    main = ContainerState("main", reason="PodInitializing")
    done = ContainerState("a", state="terminated", reason="Completed", exit_code=0, final=True, ready=True)
    running = ContainerState("b", state="running", started_at=t)
    st = pod_status([main], "127.64.0.2", t, init_containers=[done, running])
    assert st["phase"] == "Pending"
    cond = {c["type"]: c for c in st["conditions"]}
    assert cond["Initialized"]["status"] == "False" and cond["Initialized"]["reason"] == "ContainersNotInitialized"
    assert [s["name"] for s in st["initContainerStatuses"]] == ["a", "b"]
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0

    failed = ContainerState("b", state="terminated", reason="Error", exit_code=7, final=True)
    st = pod_status([main], "127.64.0.2", t, init_containers=[done, failed])
    assert st["phase"] == "Failed"
    assert st["initContainerStatuses"][1]["state"]["terminated"]["exitCode"] == 7

    st = pod_status([ContainerState("main", state="running", started_at=t)], "127.64.0.2", t, init_containers=[done])
    assert st["phase"] == "Running"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Initialized"] == "True"
    assert "initContainerStatuses" not in pod_status([main], None, t)


def test_a_restarted_node_keeps_init_counts_and_does_not_rerun_finished_init_containers() -> None:
    previous = {
        "conditions": [{"type": "Initialized", "status": "True"}],
        "initContainerStatuses": [{"name": "setup", "restartCount": 2}],
        "containerStatuses": [{"name": "main", "restartCount": 1}],
    }
    main, setup = {"main": ContainerState("main")}, {"setup": ContainerState("setup")}
    restore_counts(main, setup, previous)
    assert main["main"].restart_count == 1
    assert setup["setup"].restart_count == 2 and setup["setup"].final and setup["setup"].exit_code == 0

    setup = {"setup": ContainerState("setup")}
    restore_counts(main, setup, {**previous, "conditions": [{"type": "Initialized", "status": "False"}]})
    assert setup["setup"].restart_count == 2 and not setup["setup"].final  # not done yet: runs again


def test_sidecar_init_container_waits_with_a_clear_reason(
    cluster: ClusterHandle, namespace: str, core: client.CoreV1Api
) -> None:
    spec = {
        "initContainers": [py("proxy", "import time; time.sleep(600)", restartPolicy="Always")],
        "containers": [py("main", "import time; time.sleep(600)")],
    }
    create_pod(cluster, namespace, core, bare_pod("sidecar", spec))

    def waiting() -> client.V1ContainerStateWaiting | None:
        ics = core.read_namespaced_pod("sidecar", namespace).status.init_container_statuses
        w = ics[0].state.waiting if ics else None
        return w if w and w.reason not in ("PodInitializing", "ContainerCreating") else None

    w = wait_for("sidecar waiting", waiting, **NODE_WAIT)
    assert w.reason == "SidecarContainersNotSupported" and "restartPolicy Always" in w.message
    pod = core.read_namespaced_pod("sidecar", namespace)
    assert pod.status.phase == "Pending" and pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
