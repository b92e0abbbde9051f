"""The few Kubernetes API calls the operator makes itself (kopf does the watching).

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
from collections.abc import Callable
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
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self._threads = ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="kube")
        self._posting: set[asyncio.Task[None]] = set()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking client call on the API threads."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.api.close()

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
        _done(self.core.create_namespaced_event(meta["namespace"], event, _preload_content=False))  # type: ignore[arg-type]

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

    def _ops(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        return {
            "Deployment": (self.apps.read_namespaced_deployment, self.apps.patch_namespaced_deployment),
            "Service": (self.core.read_namespaced_service, self.core.patch_namespaced_service),
            "ConfigMap": (self.core.read_namespaced_config_map, self.core.patch_namespaced_config_map),
            "Secret": (self.core.read_namespaced_secret, self.core.patch_namespaced_secret),
        }[kind]

    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        read, _ = self._ops(kind)
        try:
            return _raw(read(name, namespace, _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.run(self._get, kind, namespace, name)

    def _list_managed(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        fn = {
            "Deployment": self.apps.list_namespaced_deployment,
            "Service": self.core.list_namespaced_service,
            "ConfigMap": self.core.list_namespaced_config_map,
            "Secret": self.core.list_namespaced_secret,
        }[kind]
        # resourceVersion 0: served from the API server's watch cache, not etcd (a second old at most).
        listed = fn(namespace, label_selector=MANAGED, resource_version="0", _preload_content=False)
        items: list[dict[str, Any]] = _raw(listed)["items"]
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
        _, patch = self._ops(manifest["kind"])
        meta = manifest["metadata"]
        return _raw(
            patch(
                meta["name"],
                meta["namespace"],
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
                _preload_content=False,
            )
        )

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
            _done(self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _preload_content=False))
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
            response = self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
                _content_type=MERGE,
                _preload_content=False,
            )
            _done(response)
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile: nothing to report on
                raise

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.run(self._patch_status, plural, namespace, name, status)

    def _patch_object(self, plural: str, namespace: str, name: str, ops: list[dict[str, Any]]) -> bool:
        """A JSON patch of the object itself; False when it is gone or a ``test`` op no longer holds (it changed
        meanwhile: the caller decides again on what it sees next)."""
        try:
            response = self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, ops, _content_type=JSON_PATCH, _preload_content=False
            )
            _done(response)
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
            response = self.custom.patch_namespaced_custom_object_scale(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"spec": {"replicas": replicas}},
                _content_type=MERGE,
                _preload_content=False,
            )
            _done(response)
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
