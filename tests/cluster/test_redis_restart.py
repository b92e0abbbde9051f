"""A Redis restarted empty (no persistence: the chart's default, an emptyDir) loses what the operator provisioned
there: each agent's user, the function library, the heartbeats. The agents cannot log in until the operator
restores their users, which the periodic resync would do only minutes later; the health round notices a missing
user while no replica beats and re-applies the Agent at once.

This module has its own Redis (the test restarts it) and its own operator, with a resync far longer than the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from podium.api.common import FINALIZER
from podium.dataplane.keys import OrchestrationKeys
from podium.operator.agents.children import redis_username
from podium_localcluster.redis_server import RedisServer
from tests.support.wait import wait_for

from .agent_support import dispatch, result
from .conftest import ClusterHandle
from .helpers import Operator, agent, apply, apply_crds, get, module_namespace, require_ready_node, status_of

pytestmark = pytest.mark.cluster

RESYNC_SECONDS = 600  # far past the test: a recovery it sees is the health round's, not the resync's


@pytest.fixture(scope="module")
def ns(cluster: ClusterHandle) -> Iterator[str]:
    require_ready_node(cluster)
    apply_crds(cluster)
    yield from module_namespace(cluster, "podium-rrs")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


@pytest.fixture(scope="module")
def op(
    cluster: ClusterHandle, ns: str, server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = Operator(cluster, ns, server.url, log, env={"PODIUM_RESYNC_SECONDS": str(RESYNC_SECONDS)})
    operator.start()
    yield operator
    operator.stop()


# The run's second attempt is in flight when Redis restarts: its entry and the run's journal are lost with it. The
# run notices at its next look, sends the same attempt again (it does not wait out the timeout for a retry) and
# writes back the first stage's journal entry (a later resume replays it instead of running it again).
TIMEOUT_SECONDS = 15
TASK_SECONDS = 8  # an attempt surely still in flight when the test restarts Redis
RUN = {
    "apiVersion": "podium.dev/v1alpha1",
    "kind": "Orchestration",
    "metadata": {"name": "across"},
    "spec": {
        "strategy": "pipeline",
        "input": "across the restart",
        "pipeline": {
            "stages": [{"name": "draft", "agent": "quick"}, {"name": "echo", "agent": "phoenix", "retries": 2}]
        },
    },
}


def ready(cluster: ClusterHandle, ns: str, name: str) -> bool:
    status = status_of(cluster, ns, "agent", name)
    return status.get("ready") == "1/1" and status.get("phase") == "Ready"


def test_agents_log_in_again_and_runs_go_on_soon_after_redis_restarts_empty(
    cluster: ClusterHandle, ns: str, op: Operator, server: RedisServer
) -> None:
    slow = {"command": {"args": ["sh", "-c", f"sleep {TASK_SECONDS}; cat"]}}
    apply(cluster, ns, agent("phoenix", replicas=1, backend=slow, resilience={"timeoutSeconds": TIMEOUT_SECONDS}))
    apply(cluster, ns, agent("quick"))
    wait_for("phoenix Ready", lambda: ready(cluster, ns, "phoenix") and ready(cluster, ns, "quick"), timeout=120)
    apply(cluster, ns, RUN)
    wait_for("the run's first attempt in flight", lambda: attempts(cluster, ns) == 1, timeout=60)
    admin = redis.Redis(host=server.host, port=server.port, decode_responses=True)
    try:
        server.restart()  # no AOF: users, library, heartbeats and queues are gone
        assert admin.execute_command("ACL", "GETUSER", redis_username(ns, "phoenix")) is None
        restarted = time.monotonic()
        # Work sent while the agent is locked out waits in its inbox and is done once it is back.
        (task,) = dispatch(server, ns, "phoenix", ["after the restart"])
        done = wait_for("the task done through the agent's restored user", lambda: result(admin, task), timeout=90)
        assert done.ok and done.output == "after the restart"
        assert admin.execute_command("ACL", "GETUSER", redis_username(ns, "phoenix")) is not None
        wait_for("phoenix Ready again", lambda: ready(cluster, ns, "phoenix"), timeout=60)
        assert time.monotonic() - restarted < RESYNC_SECONDS / 4
        assert "its Redis user is gone" in op.log.read_text()
        # The run lost its attempt with Redis and sends it again, as the same attempt; the result comes sealed with
        # the secret of the library as loaded since, not the one the operator read when it started: the run still
        # takes it.
        status = wait_for("the run to end", lambda: ended(cluster, ns), timeout=90)
        assert status["phase"] == "Succeeded", status.get("message")
        assert attempts(cluster, ns) == 1
        log = op.log.read_text()
        assert "was lost from Redis (restarted without its data?); sending it again" in log
        assert "Redis lost the run's journal (restarted without its data?); wrote back 1 finished steps" in log
        uid = (get(cluster, ns, "orchestration", "across") or {})["metadata"]["uid"]
        journal = admin.hkeys(OrchestrationKeys(ns, "across").journal(uid))
        assert sorted(journal) == ["stage-draft", "stage-echo"]
        # `kubectl describe` says so too.
        said = wait_for("the run's Warning Events", lambda: warnings(cluster, ns, "across"), timeout=30)
        assert said["JournalRestored"].endswith("wrote back the entries of 1 finished steps"), said
        assert said["TaskResent"].endswith("sent again"), said
    finally:
        admin.close()


def ended(cluster: ClusterHandle, ns: str) -> dict[str, Any] | None:
    status = status_of(cluster, ns, "orchestration", "across")
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def warnings(cluster: ClusterHandle, ns: str, name: str) -> dict[str, str] | None:
    """The Orchestration's Warning Events about Redis losing its data, reason -> message, once there are both."""
    said = {r: m for r, m in warning_events(cluster, ns, name).items() if r in ("JournalRestored", "TaskResent")}
    return said if len(said) == 2 else None


def warning_events(cluster: ClusterHandle, ns: str, name: str) -> dict[str, str]:
    """An object's Warning Events, reason -> message."""
    out = cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name},type=Warning", "-o", "json"
    )
    items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    return {e["reason"]: e["message"] for e in items}


def attempts(cluster: ClusterHandle, ns: str) -> int:
    """The attempts of the run's slow stage so far."""
    tasks = status_of(cluster, ns, "orchestration", "across").get("tasks") or []
    return next((int(t.get("attempts") or 0) for t in tasks if t.get("name") == "stage-echo"), 0)


def test_a_run_deleted_while_redis_is_away_says_why_it_waits_and_goes_once_redis_is_back(
    cluster: ClusterHandle, ns: str, op: Operator, server: RedisServer
) -> None:
    apply(cluster, ns, agent("quick"))
    wait_for("quick Ready", lambda: ready(cluster, ns, "quick"), timeout=120)
    stage = {"name": "draft", "agent": "quick"}
    run = {**RUN, "metadata": {"name": "stranded"}, "spec": {"strategy": "pipeline", "pipeline": {"stages": [stage]}}}
    apply(cluster, ns, run)
    wait_for("the run held by its finalizer", lambda: FINALIZER in finalizers(cluster, ns, "stranded"), timeout=60)
    server.stop()
    try:
        deleted = cluster.kubectl("delete", "-n", ns, "orchestration", "stranded", "--wait=false")
        assert deleted.returncode == 0, deleted.stderr
        said = wait_for(
            "a Warning saying why", lambda: warning_events(cluster, ns, "stranded").get("CleanupFailed"), timeout=60
        )
        assert said.startswith("deletion waits:") and str(server.port) in said, said
        held = get(cluster, ns, "orchestration", "stranded") or {}
        assert held["metadata"].get("deletionTimestamp")  # still there: its keys are not purged yet
    finally:
        server.start()
    wait_for("the run's object gone", lambda: get(cluster, ns, "orchestration", "stranded") is None, timeout=90)


def finalizers(cluster: ClusterHandle, ns: str, name: str) -> list[str]:
    return list(((get(cluster, ns, "orchestration", name) or {}).get("metadata") or {}).get("finalizers") or [])
