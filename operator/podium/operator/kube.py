"""The few Kubernetes API calls the operator makes itself (kopf does the watching).

They go by REST path through the official client's ``ApiClient`` (its configuration, auth, TLS and connection pool),
not through its typed API classes: the operator reads every answer as JSON, and importing ``CoreV1Api``,
``AppsV1Api`` and ``CustomObjectsApi`` builds pydantic validators for each of their hundreds of methods, about a
second of CPU and 26 MiB at every start (seconds at a replica's CPU limit, before it takes over a failed replica's
runs).

Children are written with server-side apply under one field manager, so a field we stop setting is removed and
fields others set (an HPA on the Deployment, a user's annotation) are left alone. A child is written only when the
hash of its desired content differs from the one it carries: an idle reconcile makes no writes.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from podium.api.common import GROUP, VERSION
from podium.operator.agents.children import APPLIED_REPLICAS_ANNOTATION, HASH_ANNOTATION, MANAGED_BY

log = logging.getLogger("podium.operator.kube")
T = TypeVar("T")
FIELD_MANAGER = "podium-operator"
# Blocking API calls in flight at once. asyncio's default executor has cpu+4 threads (6 on 2 cores): with a
# thousand Agents applied together, reconciles queued behind six calls while the API server had room for more.
# The kubernetes client's connection pool is sized to match, so no call waits for or re-opens a connection.
API_CONCURRENCY = 16
APPLY = "application/apply-patch+yaml"
MANAGED = f"app.kubernetes.io/managed-by={MANAGED_BY}"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# Where each child kind lives in the API.
_CHILDREN = {
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps",
    "Secret": "/api/v1/namespaces/{namespace}/secrets",
}


def _child_path(kind: str, namespace: str, name: str = "") -> str:
    return _CHILDREN[kind].format(namespace=namespace) + (f"/{name}" if name else "")


def objects_path(plural: str, namespace: str = "", name: str = "", sub: str = "") -> str:
    """The REST path of our own kind's objects: all namespaces', one namespace's, one object or its subresource."""
    path = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def load_config() -> client.ApiClient:
    """In a pod: the service account; elsewhere: KUBECONFIG or ~/.kube/config (as kubectl would)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_CONCURRENCY
    return client.ApiClient(configuration)


def _raw(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def _done(response: Any) -> None:
    """A response we need nothing from, read to its end so its connection goes back to the pool: left unread it
    holds the connection, and the next call opens a new one (a TLS handshake per status patch and Event)."""
    response.drain_conn()
    response.release_conn()


def describe_error(error: BaseException) -> str:
    """An error in one line: for the API server's, its status and what it said (the object's field it refused),
    not the client's dump of HTTP headers."""
    if isinstance(error, ApiException):
        try:
            said = json.loads(error.body or "{}").get("message")
        except (ValueError, AttributeError):
            said = None
        return f"the API server answered {error.status} {error.reason}" + (f": {said}" if said else "")
    return f"{type(error).__name__}: {error}"


class Kube:
    """Typed-enough access to the four child kinds, the Agent/Team status and pods; blocking calls run in threads."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._threads = ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="kube")
        self._posting: set[asyncio.Task[None]] = set()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking client call on the API threads."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.api.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        """One blocking call; its unread response (a urllib3 one: stream it, or hand it to :func:`_raw` or
        :func:`_done`). An answer outside 2xx raises :class:`ApiException`, as the typed API classes do."""
        headers = {"Accept": "application/json"} | ({"Content-Type": content_type} if content_type else {})
        call = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*call)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def read(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET, as JSON."""
        return _raw(self.request("GET", path, query=query))

    def list_objects(self, plural: str, namespace: str, resource_version: str | None = None) -> list[dict[str, Any]]:
        """A namespace's objects of our own kind (resource_version "0": from the API server's watch cache)."""
        query = {"resourceVersion": resource_version} if resource_version is not None else None
        items: list[dict[str, Any]] = self.read(objects_path(plural, namespace), query).get("items") or []
        return items

    def _event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        _done(self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event))

    def post_event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event about an object in the background (kopf.event needs a kopf handler's context; the run
        drivers are not kopf handlers). An Event is a courtesy: failing to post one is logged, never raised."""
        task = asyncio.get_running_loop().create_task(self.run(self._event, body, type_, reason, message))
        self._posting.add(task)
        task.add_done_callback(self._posted)

    def _posted(self, task: asyncio.Task[None]) -> None:
        self._posting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("event not posted: %s", task.exception())

    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.read(_child_path(kind, namespace, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.run(self._get, kind, namespace, name)

    def _list_managed(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        # resourceVersion 0: served from the API server's watch cache, not etcd (a second old at most).
        listed = self.read(_child_path(kind, namespace), {"labelSelector": MANAGED, "resourceVersion": "0"})
        items: list[dict[str, Any]] = listed["items"]
        return items

    async def children(self, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The Services, ConfigMaps and Secrets this operator manages in the namespace, by (kind, name): three
        LISTs for all its Agents instead of three GETs per Agent (Deployments come from kopf's index)."""
        kinds = ("Service", "ConfigMap", "Secret")
        found = await asyncio.gather(*(self.run(self._list_managed, kind, namespace) for kind in kinds))
        return {
            (kind, o["metadata"]["name"]): _essence(o) for kind, items in zip(kinds, found, strict=True) for o in items
        }

    def _apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = _child_path(manifest["kind"], meta["namespace"], meta["name"])
        query = {"fieldManager": FIELD_MANAGER, "force": "true"}
        return _raw(self.request("PATCH", path, query=query, body=manifest, content_type=APPLY))

    async def ensure(self, manifest: dict[str, Any], existing: dict[str, Any] | None) -> str:
        """Make the child match ``manifest``; return ``created``, ``updated``, ``scaled`` or ``unchanged``."""
        want = manifest["metadata"]["annotations"][HASH_ANNOTATION]
        if existing is None:
            await self.run(self._apply, manifest)
            return "created"
        annotations = (existing.get("metadata") or {}).get("annotations") or {}
        have = annotations.get(HASH_ANNOTATION)
        if have != want:
            await self.run(self._apply, manifest)
            return "updated"
        if manifest["kind"] == "Deployment":
            spec_replicas = (existing.get("spec") or {}).get("replicas")
            applied = manifest["metadata"]["annotations"][APPLIED_REPLICAS_ANNOTATION]
            have_applied = annotations.get(APPLIED_REPLICAS_ANNOTATION)
            if spec_replicas != manifest["spec"]["replicas"] or have_applied != applied:
                await self.run(self._apply, manifest)
                return "scaled"
        return "unchanged"

    def _delete_pod(self, namespace: str, name: str) -> bool:
        try:
            _done(
                self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", query={"gracePeriodSeconds": "0"})
            )
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    async def delete_pod(self, namespace: str, name: str) -> bool:
        """Restart a replica by deleting its pod at once: a frozen process would not honour a graceful stop."""
        return await self.run(self._delete_pod, namespace, name)

    def _patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            path = objects_path(plural, namespace, name, "status")
            _done(self.request("PATCH", path, body={"status": status}, content_type=MERGE))
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile: nothing to report on
                raise

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.run(self._patch_status, plural, namespace, name, status)

    def _patch_object(self, plural: str, namespace: str, name: str, ops: list[dict[str, Any]]) -> bool:
        """A JSON patch of the object itself; False when it is gone or a ``test`` op no longer holds (it changed
        meanwhile: the caller decides again on what it sees next)."""
        try:
            _done(self.request("PATCH", objects_path(plural, namespace, name), body=ops, content_type=JSON_PATCH))
            return True
        except ApiException as e:
            if e.status in (404, 409, 422):
                return False
            raise

    async def add_finalizer(self, plural: str, body: dict[str, Any], finalizer: str) -> bool:
        """Hold the object's deletion until :meth:`remove_finalizer`, unless it holds it already."""
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if finalizer in finalizers:
            return True
        # Appended to the list as read (the test fails if another writer changed it meanwhile); a list that does not
        # exist yet is created.
        ops: list[dict[str, Any]] = (
            [
                {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
            ]
            if finalizers
            else [{"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]
        )
        return await self.run(self._patch_object, plural, meta["namespace"], meta["name"], ops)

    async def remove_finalizer(self, plural: str, body: dict[str, Any], finalizer: str) -> bool:
        """Let the object's deletion go on (as far as this finalizer is concerned)."""
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if finalizer not in finalizers:
            return True
        at = finalizers.index(finalizer)
        ops = [
            {"op": "test", "path": f"/metadata/finalizers/{at}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{at}"},
        ]
        return await self.run(self._patch_object, plural, meta["namespace"], meta["name"], ops)

    def _patch_scale(self, plural: str, namespace: str, name: str, replicas: int) -> bool:
        try:
            path = objects_path(plural, namespace, name, "scale")
            _done(self.request("PATCH", path, body={"spec": {"replicas": replicas}}, content_type=MERGE))
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    async def patch_scale(self, plural: str, namespace: str, name: str, replicas: int) -> bool:
        """Set spec.replicas through the scale subresource, as `kubectl scale` and an HPA do; False if gone."""
        return await self.run(self._patch_scale, plural, namespace, name, replicas)


def _essence(child: dict[str, Any]) -> dict[str, Any]:
    """What a reconcile compares of a listed child (its hash and applied-replicas annotations, a Deployment's
    replicas, the Secret's password): a namespace's list is kept for seconds, so not the whole objects."""
    meta = child.get("metadata") or {}
    out: dict[str, Any] = {"metadata": {"name": meta.get("name"), "annotations": dict(meta.get("annotations") or {})}}
    if "replicas" in (child.get("spec") or {}):
        out["spec"] = {"replicas": child["spec"]["replicas"]}
    password = (child.get("data") or {}).get("password")
    if password is not None:
        out["data"] = {"password": password}
    return out


def secret_value(secret: dict[str, Any] | None, key: str) -> str | None:
    if not secret:
        return None
    raw = (secret.get("data") or {}).get(key)
    return base64.b64decode(raw).decode() if raw else None
