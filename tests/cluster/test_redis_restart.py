"""A Redis restarted empty (no persistence: the chart's default, an emptyDir) loses what the operator provisioned
there: each agent's user, the function library, the heartbeats. The agents cannot log in until the operator
restores their users, which the periodic resync would do only minutes later; the health round notices a missing
user while no replica beats and re-applies the Agent at once.

This module has its own Redis (the test restarts it) and its own operator, with a resync far longer than the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from podium.operator.agents.children import redis_username
from podium_localcluster.redis_server import RedisServer
from tests.support.wait import wait_for

from .agent_support import dispatch, result
from .conftest import ClusterHandle
from .helpers import Operator, agent, apply, apply_crds, module_namespace, require_ready_node, status_of

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


def ready(cluster: ClusterHandle, ns: str, name: str) -> bool:
    status = status_of(cluster, ns, "agent", name)
    return status.get("ready") == "1/1" and status.get("phase") == "Ready"


def test_agents_log_in_again_soon_after_redis_restarts_empty(
    cluster: ClusterHandle, ns: str, op: Operator, server: RedisServer
) -> None:
    apply(cluster, ns, agent("phoenix", replicas=1))
    wait_for("phoenix Ready", lambda: ready(cluster, ns, "phoenix"), timeout=120)
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
    finally:
        admin.close()
