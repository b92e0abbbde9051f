"""Redis deployments for tests, on 127.0.0.1 ports: a Redis Cluster of 3 primaries, and a Sentinel set (1 primary,
1 replica, 3 Sentinels). Real redis-server processes (``redis-server --cluster-enabled yes`` then ``redis-cli
--cluster create``; ``redis-server <conf> --sentinel``), each with a directory of its own; stop() ends them all."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

import redis

from podium_localcluster.redis_server import RedisServer, free_port
from tests.support.wait import wait_for

MASTER_NAME = "podium"


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, which caps it at 55535."""
    for _ in range(1000):
        port = free_port()
        if port <= 55535 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)


class _Servers:
    """A set of servers used as a context manager: started on entry, stopped on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()  # what did start must not outlive a failed start
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisClusterSet(_Servers):
    """``masters`` primaries, no replicas, every slot assigned; ``url`` is a ``redis+cluster://`` URL."""

    def __init__(self, masters: int = 3, *, appendonly: bool = False) -> None:
        self.nodes = [
            RedisServer(
                cluster_port(),
                appendonly=appendonly,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
            for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisClusterSet:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed: apt-get install redis-tools (or `make setup`)")
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def ready() -> bool:
            for node in self.nodes:
                with _client(node.port) as c:
                    info = c.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info:
                        return False
            return True

        wait_for("cluster_state:ok on every node", ready, 30, 0.1)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
            shutil.rmtree(node.directory, ignore_errors=True)


class SentinelSet(_Servers):
    """A primary with one replica, watched by three Sentinels (quorum 2) under the name ``podium``."""

    # A primary silent this long is down. A freshly promoted one must answer the Sentinels within it too, or they
    # fail over again, back to the old primary the test just restarted: at 1 s that happened in 1 run of 4 on the
    # 2-core machine.
    def __init__(self, *, down_after_ms: int = 3000) -> None:
        self.primary = RedisServer(appendonly=True)
        self.replica = RedisServer(appendonly=True)
        self.down_after_ms = down_after_ms
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.directory = Path(tempfile.mkdtemp(prefix="podium-sentinel-"))
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{MASTER_NAME}"

    def _start_sentinel(self, index: int) -> subprocess.Popen[bytes]:
        port = self.sentinel_ports[index]
        conf = self.directory / f"sentinel-{index}.conf"
        if not conf.exists():  # Sentinel rewrites its file: keep what it learnt across restarts
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
        log = (self.directory / f"sentinel-{index}.log").open("ab")
        return subprocess.Popen(
            [self.primary.binary, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start(self) -> SentinelSet:
        self.primary.start()
        self.replica.extra_args = ["--replicaof", "127.0.0.1", str(self.primary.port)]
        self.replica.start()

        def linked() -> bool:
            with _client(self.replica.port) as c:
                return c.info("replication").get("master_link_status") == "up"

        wait_for("the replica synced with the primary", linked, 30, 0.1)
        self.sentinels = [self._start_sentinel(i) for i in range(3)]

        def watching() -> bool:
            for port in self.sentinel_ports:
                with _client(port) as c:
                    state = c.sentinel_master(MASTER_NAME)  # redis-py: a dict
                    if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                        return False
            return True

        wait_for(
            "every Sentinel sees the replica and the other Sentinels", watching, 60, 0.2, ignore=(redis.RedisError,)
        )
        return self

    def primary_port(self) -> int:
        with _client(self.sentinel_ports[0]) as c:
            _host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            return int(port)

    def server(self, port: int) -> RedisServer:
        return self.primary if port == self.primary.port else self.replica

    def kill_primary_and_wait_for_failover(self, timeout: float = 30.0) -> tuple[RedisServer, RedisServer]:
        """SIGKILL the primary; wait until the Sentinels have promoted the replica; start the old primary again (the
        Sentinels make it a replica of the new one) and wait until one is the primary and the other its synced
        replica. Returns (the primary killed, the primary now): the one promoted, unless the Sentinels failed over
        once more since (then the old one again)."""
        old = self.server(self.primary_port())
        new = self.replica if old is self.primary else self.primary
        old.stop(kill=True)
        wait_for("the Sentinels to promote the replica", lambda: self.primary_port() == new.port, timeout, 0.1)
        old.extra_args = []
        old.start()

        def settled() -> RedisServer | None:
            primary = self.server(self.primary_port())
            other = self.replica if primary is self.primary else self.primary
            with _client(other.port) as c:
                info = c.info("replication")
            synced = info.get("role") == "slave" and info.get("master_link_status") == "up"
            return primary if synced and int(info.get("master_port", 0)) == primary.port else None

        # Sentinel converts a returning primary after its next INFO round (every 10 s) and the sync follows: on a
        # loaded machine that alone can take most of the failover's timeout.
        now = wait_for("a primary and its synced replica", settled, 3 * timeout, 0.2, ignore=(redis.RedisError,))
        return old, now

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.sentinels:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for server in (self.primary, self.replica):
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
        shutil.rmtree(self.directory, ignore_errors=True)
