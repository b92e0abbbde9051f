"""Redis clients for the data plane, from one URL, for each deployment Podium supports.

- ``redis://[user:pass@]host:port/db``, ``rediss://...`` (TLS), ``unix:///path?db=0``: one server.
- ``redis+sentinel://[user:pass@]host:port[,host:port...]/<master name>[/db]`` (``rediss+sentinel`` for TLS): a
  primary found through Redis Sentinel; after a failover the client follows the new primary. The credentials are
  the data nodes'; a password for the Sentinels themselves goes in ``?sentinel_password=...`` (and
  ``sentinel_username``).
- ``redis+cluster://[user:pass@]host:port[,host:port...]`` (``rediss+cluster`` for TLS): a Redis Cluster; the hosts
  are seeds, the client discovers the rest.

Any of them takes ``?wait_replicas=N``: a completion counts only once N replicas hold it (``WAIT``), so a failover
cannot lose a result its agent considers stored. The default is 1 with Sentinel (which always has a replica to
fail over to) and 0 otherwise; a Cluster cannot WAIT (no key to route it by).

The clients are redis-py's own (``Redis``, ``Sentinel``'s managed pool, ``RedisCluster``): this module only picks
one and sets it up. Single-server and Sentinel connections are redis-py's with a cheaper wire (``wire.py``:
commands packed in C, one deadline per wait instead of one per reply, a pipeline's replies read in one
loop). A Cluster client learns the keys of the bus's commands without asking the server (redis-py would send
COMMAND GETKEYS before every FCALL and XREADGROUP), which also lets an agent's user go without COMMAND.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection
from redis.exceptions import NoPermissionError

from podium.dataplane.wire import WireRedis, wire

Kind = Literal["standalone", "sentinel", "cluster"]
SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "unix": ("standalone", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
# Query parameters this module reads; any other is redis-py's (single server only).
_OURS = ("wait_replicas", "sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL."""

    kind: Kind
    url: str  # as given
    ssl: bool = False
    nodes: tuple[tuple[str, int], ...] = ()  # Sentinels or Cluster seeds
    master: str = ""  # Sentinel's name of the primary
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    wait_replicas: int = 0
    options: dict[str, str] = field(default_factory=dict)  # redis-py's own query parameters (single server)

    @property
    def server_url(self) -> str:
        """For a single server: the URL redis-py parses (without this module's parameters)."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(query=urlencode(self.options)))


def _hosts(netloc: str, scheme: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        if not item:
            raise ValueError(f"{scheme}:// URL has an empty host in {netloc!r}")
        host, port = item, default_port
        if item.startswith("["):  # [ipv6]:port
            close = item.find("]")
            host, rest = item[1:close], item[close + 1 :]
            if rest:
                port = _port(rest.removeprefix(":"), scheme)
        elif item.count(":") == 1:
            host, raw = item.split(":")
            port = _port(raw, scheme)
        if not host:
            raise ValueError(f"{scheme}:// URL has an empty host in {netloc!r}")
        hosts.append((host, port))
    return tuple(hosts)


def _port(raw: str, scheme: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{scheme}:// URL has a bad port {raw!r}")
    return int(raw)


def parse_url(url: str) -> RedisTarget:
    """Parse a Redis URL of any supported deployment; ValueError says what is wrong and what is expected."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError(f"Redis URL {redact(url)!r}: expected one of {', '.join(s + '://' for s in SCHEMES)}")
    kind, ssl = SCHEMES[scheme.lower()]
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo, at, hosts = netloc.rpartition("@")
    # A list of hosts is read by _hosts: urlsplit (patched Pythons) refuses one with a bracketed IPv6 host in it.
    parts = urlsplit(url if kind == "standalone" else url.replace(netloc, f"{userinfo}{at}hosts", 1))
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    options = {k: v for k, v in query.items() if k not in _OURS}
    raw_wait = query.get("wait_replicas", "1" if kind == "sentinel" else "0")
    if not raw_wait.isdigit():
        raise ValueError(f"Redis URL {redact(url)!r}: wait_replicas must be a whole number, got {raw_wait!r}")
    wait = int(raw_wait)
    if kind == "cluster" and wait:
        raise ValueError(f"Redis URL {redact(url)!r}: a Redis Cluster cannot WAIT for replicas (wait_replicas=0)")
    common: dict[str, Any] = {
        "kind": kind,
        "url": url,
        "ssl": ssl,
        "wait_replicas": wait,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }
    if kind == "standalone":
        if scheme.lower() != "unix" and not parts.hostname:
            raise ValueError(f"Redis URL {redact(url)!r} names no host")
        return RedisTarget(**common, options=options)
    if options:
        raise ValueError(f"Redis URL {redact(url)!r}: unknown parameters {sorted(options)} (known: {list(_OURS)})")
    nodes = _hosts(hosts, scheme, 26379 if kind == "sentinel" else 6379)
    path = [p for p in parts.path.split("/") if p]
    if kind == "cluster":
        if path not in ([], ["0"]):
            raise ValueError(f"Redis URL {redact(url)!r}: a Redis Cluster has only database 0")
        return RedisTarget(**common, nodes=nodes)
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"Redis URL {redact(url)!r}: expected {scheme}://host:port[,host:port...]/<master name>[/db]")
    return RedisTarget(
        **common,
        nodes=nodes,
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
    )


def redact(url: str) -> str:
    """The URL without credentials (user names and passwords, the Sentinels' too), for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    path_and_query = slash + tail
    if "?" in netloc:  # no path: the query follows the hosts
        netloc, _, query = netloc.partition("?")
        path_and_query = "?" + query + path_and_query
    netloc = netloc.rpartition("@")[2]
    head, qmark, query = path_and_query.partition("?")
    if qmark:
        pairs = [(k, "***" if "password" in k else v[-1]) for k, v in parse_qs(query, keep_blank_values=True).items()]
        head += "?" + urlencode(pairs, safe="*")
    return f"{scheme}://{netloc}{head}"


def without_credentials(url: str) -> str:
    """The URL with the data nodes' user name and password removed (other parameters kept): what agent pods get,
    their own credentials coming from their Secret."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
        tail, slash = f"?{query}", ""
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{tail}"


class _SentinelRedis(WireRedis):
    """The primary's client; closing it closes the connections to the Sentinels too."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            await self.sentinels.aclose()


def _first_keys(args: tuple[Any, ...]) -> tuple[str, list[Any]] | None:
    """(command name, its keys) for the commands the bus sends, without asking the server."""
    words = str(args[0].decode() if isinstance(args[0], bytes) else args[0]).upper().split()
    name, rest = words[0], [*words[1:], *args[1:]]
    if name in ("FCALL", "FCALL_RO") and len(rest) >= 2:
        count = int(rest[1])
        return name, rest[2 : 2 + count]
    if name in ("XREADGROUP", "XREAD"):
        upper = [str(a).upper() if isinstance(a, str) else a for a in rest]
        for marker in ("STREAMS", b"STREAMS"):
            if marker in upper:
                streams = rest[upper.index(marker) + 1 :]
                return name, streams[: len(streams) // 2]
        return None
    if name == "XGROUP" and len(rest) >= 2:
        return name, [rest[1]]
    if name in ("SMEMBERS", "GET", "XLEN", "XRANGE", "XREVRANGE", "HGETALL") and rest:
        return name, [rest[0]]
    return None


class _BusKeysParser(AsyncCommandsParser):
    """redis-py's command parser with the bus's commands known in advance. redis-py asks the server (COMMAND
    GETKEYS) for the keys of every command with movable keys, FCALL and XREADGROUP among them: one more round trip
    per call, and in a pipeline one per command before the pipeline is sent."""

    async def initialize(self, node: Any = None) -> None:
        try:
            await super().initialize(node)
        except NoPermissionError:  # an agent's user may not run COMMAND; it sends only the commands known above
            self.commands = {}

    async def get_keys(self, *args: Any) -> tuple[Any, ...] | None:
        known = _first_keys(args)
        if known is not None:
            return tuple(known[1]) or None
        return await super().get_keys(*args)


def connect(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    pool_class: type[aioredis.ConnectionPool] = aioredis.ConnectionPool,
    **kwargs: Any,
) -> aioredis.Redis:
    """A client for ``url`` (any form :func:`parse_url` takes). ``username``/``password`` override the URL's;
    other keyword arguments go to redis-py (``pool_class`` only for a single server, e.g. ``BlockingConnectionPool``).

    The return type is ``redis.asyncio.Redis`` for the type checker; for a Cluster it is a ``RedisCluster``, which
    has the same command methods (callers that need to know ask :mod:`podium.dataplane.topology`).
    """
    target = parse_url(url)
    user = username if username is not None else target.username
    secret = password if password is not None else target.password
    if target.kind == "cluster":
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=user,
            password=secret,
            ssl=target.ssl,
            **kwargs,
        )
        cluster.commands_parser = _BusKeysParser()
        return cluster  # type: ignore[return-value]
    if target.kind == "sentinel":
        sentinel_kwargs: dict[str, Any] = {
            k: v for k, v in kwargs.items() if k.startswith("socket_") or k == "health_check_interval"
        }
        if target.sentinel_username:
            sentinel_kwargs["username"] = target.sentinel_username
        if target.sentinel_password:
            sentinel_kwargs["password"] = target.sentinel_password
        if target.ssl:
            sentinel_kwargs["ssl"] = True
        sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
        connection = SentinelManagedSSLConnection if target.ssl else SentinelManagedConnection
        client = sentinel.master_for(
            target.master,
            redis_class=_SentinelRedis,
            connection_class=wire(connection),
            username=user,
            password=secret,
            db=target.db,
            **kwargs,
        )
        client.sentinels = sentinel
        return client
    overrides = {k: v for k, v in (("username", username), ("password", password)) if v is not None}
    pool = pool_class.from_url(target.server_url, **overrides, **kwargs)
    pool.connection_class = wire(pool.connection_class)
    return WireRedis(connection_pool=pool)


def target_url(kind: Kind, nodes: list[tuple[str, int]], *, master: str = "", **query: str) -> str:
    """Build a URL of ``kind`` (tests and tools): e.g. ``target_url("cluster", [("127.0.0.1", 7000)])``."""
    scheme = {"standalone": "redis", "sentinel": "redis+sentinel", "cluster": "redis+cluster"}[kind]
    hosts = ",".join(f"{h}:{p}" for h, p in nodes)
    path = f"/{quote(master)}" if master else ("/0" if kind == "standalone" else "")
    return f"{scheme}://{hosts}{path}" + (f"?{urlencode(query)}" if query else "")


__all__ = [
    "RedisTarget",
    "connect",
    "parse_url",
    "redact",
    "target_url",
    "without_credentials",
]
