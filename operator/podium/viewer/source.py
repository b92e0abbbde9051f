"""Where the viewer reads a run from: the Kubernetes API (the Orchestration, its Events) and Redis (its journal,
events, agents' results, shared state, large result), through the data plane's own readers. Read-only.

Kubernetes is the source of truth for which runs exist: a run the API server does not know is not shown, even if
Redis still holds keys of it. Redis adds what a run did; when Redis cannot be read the page still shows the
status, with a warning that says what is missing and why.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from podium.api.common import GROUP, VERSION
from podium.dataplane.bus import Bus
from podium.dataplane.messages import MalformedMessage, Result
from podium.dataplane.runs import load_result
from podium.dataplane.state import SharedState
from podium.engine.journal import Journal
from podium.viewer.model import RunData

PLURAL = "orchestrations"
EVENTS_LIMIT = 500  # the run's own event stream: its newest events
RESULTS_LIMIT = 500  # per agent: its newest results, of which this run's attempts are kept
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# The Redis ACL of the viewer's own user (the chart creates it on its built-in Redis; docs/viewer.md shows it for
# another Redis): read commands on Podium's keys, nothing that writes, no KEYS/SCAN over the keyspace' dangerous
# commands. Tested against a real Redis with the reads below.
ACL_RULES: tuple[str, ...] = ("resetkeys", "%R~podium:*", "resetchannels", "-@all", "+@read", "-@dangerous", "+ping")


class ViewerError(Exception):
    """A request the viewer cannot answer; ``status`` is the HTTP status it answers with."""

    status = 500


class NotFound(ViewerError):
    status = 404


class Unavailable(ViewerError):
    """The Kubernetes API could not be read (unreachable, or this identity may not read Orchestrations)."""

    status = 502


def check_namespace(value: str) -> str:
    if not _NAMESPACE.match(value or ""):
        raise NotFound(f"{value!r} is not a namespace name (a DNS label: lower-case letters, digits and '-')")
    return value


class KubeReader(Protocol):
    """What the viewer reads from the Kubernetes API."""

    async def list_runs(self, namespace: str) -> list[dict[str, Any]]: ...
    async def get_run(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def run_events(self, namespace: str, name: str) -> list[dict[str, Any]]: ...
    async def namespaces_with_runs(self) -> list[str]: ...


class Kube:
    """:class:`KubeReader` over the official client (blocking calls in threads, so requests overlap)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._client = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster when in a pod, else KUBECONFIG / ~/.kube/config (or ``kubeconfig``)."""
        from kubernetes import config

        try:
            if kubeconfig:
                api = config.new_client_from_config(config_file=kubeconfig)
            else:
                try:
                    config.load_incluster_config()
                except config.ConfigException:
                    # KUBECONFIG as it is now: the client's default is the one it had when it was first imported.
                    config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
                from kubernetes import client

                api = client.ApiClient()
        except (config.ConfigException, OSError) as exc:
            raise Unavailable(f"no Kubernetes configuration (in-cluster, KUBECONFIG or ~/.kube/config): {exc}") from exc
        return cls(api)

    def close(self) -> None:
        self._client.close()

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return await asyncio.to_thread(fn, *args, _request_timeout=15, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{what}: not found") from exc
            if exc.status in (401, 403):
                reason = f"{exc.status} {exc.reason}"
                raise Unavailable(f"{what}: the viewer may not read it ({reason}): check its RBAC") from exc
            raise Unavailable(f"{what}: the Kubernetes API answered {exc.status} {exc.reason}") from exc
        except (HTTPError, OSError) as exc:  # unreachable API server, TLS trouble
            raise Unavailable(f"{what}: the Kubernetes API is not reachable: {exc}") from exc

    async def list_runs(self, namespace: str) -> list[dict[str, Any]]:
        found = await self._call(
            f"orchestrations in namespace {namespace}",
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
        )
        return list(found.get("items") or [])

    async def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        what = f"orchestration {name} in namespace {namespace}"
        obj: dict[str, Any] = await self._call(
            what, self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
        return obj

    async def run_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        found = await self._call(
            f"events of orchestration {name}",
            self._core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.kind=Orchestration,involvedObject.name={name}",
        )
        events: list[dict[str, Any]] = self._client.sanitize_for_serialization(found).get("items") or []
        return events

    async def namespaces_with_runs(self) -> list[str]:
        found = await self._call(
            "orchestrations in all namespaces", self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL
        )
        return sorted({i["metadata"]["namespace"] for i in found.get("items") or []})


@dataclass(frozen=True)
class Scope:
    """The namespaces a viewer serves: a fixed list, or every namespace (``namespaces`` empty)."""

    namespaces: tuple[str, ...] = ()

    @property
    def everywhere(self) -> bool:
        return not self.namespaces

    def check(self, namespace: str) -> str:
        check_namespace(namespace)
        if not self.everywhere and namespace not in self.namespaces:
            raise NotFound(
                f"namespace {namespace} is not served by this viewer (it serves {', '.join(self.namespaces)})"
            )
        return namespace


def run_results(events: Sequence[Any], uid: str) -> list[Result]:
    """This run's attempts among an agent's conversation (:meth:`Bus.history`): its results whose task id is the
    run's (``<uid>:...``)."""
    out = []
    for event in events:
        if event.type != "result" or not isinstance(event.payload, dict):
            continue
        if not str(event.payload.get("task_id", "")).startswith(f"{uid}:"):
            continue
        try:
            out.append(Result.from_dict(event.payload))
        except MalformedMessage:
            continue  # a result the engine refused too; the journal has the step's outcome
    return out


class Source:
    """Reads runs for the server. Owns neither client: the caller opens and closes them."""

    def __init__(self, kube: KubeReader, redis: aioredis.Redis | None, scope: Scope, redis_label: str = "") -> None:
        self.kube = kube
        self.redis = redis
        self.scope = scope
        self.redis_label = redis_label  # where Redis is, for warnings (never with credentials)
        self._bus = Bus(redis) if redis is not None else None

    async def close(self) -> None:
        if self._bus is not None:
            await self._bus.close()

    async def namespaces(self) -> list[str]:
        if not self.scope.everywhere:
            return list(self.scope.namespaces)
        return await self.kube.namespaces_with_runs()

    async def runs(self, namespace: str) -> list[dict[str, Any]]:
        return await self.kube.list_runs(self.scope.check(namespace))

    async def run(self, namespace: str, name: str) -> RunData:
        obj = await self.kube.get_run(self.scope.check(namespace), name)
        data = RunData(obj=obj, result=(obj.get("status") or {}).get("result"))
        try:
            data.kube_events = await self.kube.run_events(namespace, name)
        except ViewerError as exc:
            data.warnings.append(f"Kubernetes Events not shown: {exc}")
        if self._bus is None or self.redis is None:
            data.warnings.append("no Redis configured (--redis-url): the journal, timeline and history are not shown")
            return data
        try:
            await self._read_redis(data, namespace, name, str(obj["metadata"]["uid"]))
        except RedisError as exc:
            data.warnings.append(
                f"Redis {self.redis_label} could not be read ({type(exc).__name__}: {exc}): the journal, timeline and "
                "history are missing or incomplete"
            )
        return data

    async def _read_redis(self, data: RunData, namespace: str, name: str, uid: str) -> None:
        assert self._bus is not None and self.redis is not None
        data.entries = await Journal(self.redis, namespace, name, uid).entries()
        data.events = await self._bus.history(orchestration=f"{namespace}/{name}", limit=EVENTS_LIMIT)
        agents = sorted({e.agent for e in data.entries if e.agent} | {a for e in data.entries for a in e.history})
        for agent in agents:
            said = await self._bus.history(agent=(namespace, agent), limit=RESULTS_LIMIT)
            data.results.extend(run_results(said, uid))
        data.state = await SharedState(self.redis, namespace, name).get_all()
        ref = (data.obj.get("status") or {}).get("resultRef")
        if ref:
            try:
                data.result = await load_result(self.redis, ref)
            except (LookupError, ValueError) as exc:
                data.warnings.append(f"result not shown: {exc}")
