"""The node agent: registers the Node, renews its Lease, runs the pods bound to it, proxies Services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from podium_localcluster.node.ipam import PodIPAllocator
from podium_localcluster.node.kubeapi import ApiError, KubeAPI
from podium_localcluster.node.podworker import PodWorker, pod_key
from podium_localcluster.node.services import PodView, ServiceProxy, desired_routes
from podium_localcluster.node.status import rfc3339

Obj = dict[str, Any]
log = logging.getLogger("podium.node")
KUBELET_VERSION = "v1.34.4"
LEASE_SECONDS = 40
SHUTDOWN_GRACE_CAP = 5.0  # `podium-cluster down` SIGKILLs the node 10 s after SIGTERM


def micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reap_orphans(state_dir: Path) -> int:
    """Kill process groups a previous node process left (pid files whose process still carries the pod UID)."""
    killed = 0
    for pid_file in (state_dir / "pods").glob("*/*.pid"):
        uid = pid_file.parent.name.rsplit("_", 1)[-1]
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text())
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            if f"PODIUM_POD_UID={uid}".encode() in environ.split(b"\0"):
                os.killpg(pid, signal.SIGKILL)
                killed += 1
        pid_file.unlink(missing_ok=True)
    return killed


class NodeAgent:
    def __init__(
        self,
        api: KubeAPI,
        name: str,
        state_dir: Path,
        *,
        api_url: str | None = None,
        pod_cidr: str = "127.64.0.0/16",
        backoff_base: float = 10.0,
        capacity: dict[str, str] | None = None,
        kubelet_port: int = 0,
    ) -> None:
        self.api = api
        self.name = name
        self.state_dir = state_dir
        self.ipam = PodIPAllocator(pod_cidr)
        self.backoff_base = backoff_base
        url = urlparse(api_url or api.host)
        self.api_host_port: tuple[str, int] = (url.hostname or "127.0.0.1", url.port or 443)
        venv_bin = os.path.dirname(os.path.abspath(os.sys.executable))  # type: ignore[attr-defined]
        self.pod_path = os.pathsep.join(
            [venv_bin, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        )
        self.capacity = capacity or {"cpu": "16", "memory": "32Gi", "pods": "250", "ephemeral-storage": "100Gi"}
        self.kubelet_port = kubelet_port
        self.services: dict[str, Obj] = {}
        self.workers: dict[str, PodWorker] = {}
        self._terminating: dict[str, asyncio.Task[None]] = {}
        self.proxy = ServiceProxy()
        self._routes_dirty = asyncio.Event()
        self._hosts_dirty = False
        self._tasks: list[asyncio.Task[None]] = []

    # ---- API helpers -----------------------------------------------------------------------------------------

    async def get_optional(self, path: str) -> Obj | None:
        try:
            return await self.api.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def request_token(self, pod: Obj, audience: str, expiration: int) -> str:
        meta = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        spec: Obj = {
            "expirationSeconds": expiration,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": meta["uid"]},
        }
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        resp = await self.api.create(f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token", body)
        token: str = resp["status"]["token"]
        return token

    # ---- node registration -----------------------------------------------------------------------------------

    def node_status(self, ready: bool = True, reason: str = "KubeletReady") -> Obj:
        t = rfc3339(datetime.now(UTC))

        def cond(kind: str, status: str, why: str, msg: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": why,
                "message": msg,
                "lastHeartbeatTime": t,
                "lastTransitionTime": t,
            }

        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            # InternalIP only: the API server dials the first address type it prefers (Hostname comes first by
            # default), and the node name does not resolve.
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "podium node does not track memory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "podium node does not track disk"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "podium node does not track PIDs"),
                cond(
                    "Ready",
                    "True" if ready else "False",
                    reason,
                    "podium node is posting ready status" if ready else "podium node is shutting down",
                ),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "podium node (processes)",
                "containerRuntimeVersion": "podium://0.1.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    async def register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    "node.podium.dev/processes": "true",
                },
            },
            "spec": {},
        }
        try:
            await self.api.create("/api/v1/nodes", body)
            log.info("registered node %s", self.name)
        except ApiError as e:
            if e.status != 409:
                raise
        await self.api.merge_patch(f"/api/v1/nodes/{self.name}/status", {"status": self.node_status()})

    async def _lease_loop(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        while True:
            try:
                body: Obj = {
                    "spec": {
                        "holderIdentity": self.name,
                        "leaseDurationSeconds": LEASE_SECONDS,
                        "renewTime": micro_time(),
                    }
                }
                try:
                    await self.api.merge_patch(path, body)
                except ApiError as e:
                    if e.status != 404:
                        raise
                    node = await self.api.get(f"/api/v1/nodes/{self.name}")
                    body |= {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {
                            "name": self.name,
                            "ownerReferences": [
                                {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": node["metadata"]["uid"]}
                            ],
                        },
                    }
                    await self.api.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body)
            except Exception as e:
                log.warning("lease renewal failed: %s", e)
            await asyncio.sleep(10)

    async def _node_status_loop(self) -> None:
        while True:
            await asyncio.sleep(60)
            try:
                await self.api.merge_patch(f"/api/v1/nodes/{self.name}/status", {"status": self.node_status()})
            except Exception as e:
                log.warning("node status update failed: %s", e)

    # ---- watches ---------------------------------------------------------------------------------------------

    async def _watch(self, path: str, params: dict[str, str], on_list: Any, on_event: Any) -> None:
        """List then watch, relisting whenever the watch breaks or its resourceVersion expires."""
        while True:
            try:
                lst = await self.api.get(path, params)
                await on_list(lst.get("items") or [])
                rv = lst["metadata"]["resourceVersion"]
                while True:
                    async for ev in self.api.watch(path, rv, params):
                        if ev["type"] == "ERROR":
                            raise ApiError(int(ev["object"].get("code", 500)), "WATCH", path, str(ev["object"]))
                        rv = ev["object"]["metadata"]["resourceVersion"]
                        if ev["type"] != "BOOKMARK":
                            await on_event(ev["type"], ev["object"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.info("watch %s restarts: %s", path, e)
                await asyncio.sleep(1)

    async def _pods_listed(self, items: list[Obj]) -> None:
        seen = {p["metadata"]["uid"] for p in items}
        for uid in list(self.workers):
            if uid not in seen:
                await self._pod_event("DELETED", self.workers[uid].pod)
        for p in items:
            await self._pod_event("MODIFIED", p)

    async def _pod_event(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None and uid not in self._terminating:
                self._terminating[uid] = asyncio.create_task(self._terminate(worker, 0.0, delete=False))
            return
        deleting = pod["metadata"].get("deletionTimestamp") is not None
        phase = (pod.get("status") or {}).get("phase")
        if worker is None:
            if deleting:
                if uid not in self._terminating:
                    # Never started here (or finished earlier): nothing to stop, just let the object go.
                    self._terminating[uid] = asyncio.create_task(self._delete_pod(pod))
                return
            if phase in ("Succeeded", "Failed"):
                return
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            log.info("pod %s: admitted (uid %s)", pod_key(pod), uid)
            worker.start()
            return
        worker.update(pod)
        if deleting and uid not in self._terminating:
            meta = pod["metadata"]
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            self._terminating[uid] = asyncio.create_task(self._terminate(worker, float(grace), delete=True))

    async def _terminate(self, worker: PodWorker, grace: float, delete: bool) -> None:
        try:
            await worker.stop(grace)
            self.pods_changed()
            if delete:
                await worker.flush_status()
                await self._delete_pod(worker.pod)
        finally:
            worker.close()
            self.workers.pop(worker.uid, None)
            self._terminating.pop(worker.uid, None)
            log.info("pod %s: terminated", pod_key(worker.pod))

    async def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.api.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]},
                },
            )
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("pod %s: delete failed: %s", pod_key(pod), e)
        finally:
            if meta["uid"] not in self.workers:
                self._terminating.pop(meta["uid"], None)

    async def _services_listed(self, items: list[Obj]) -> None:
        self.services = {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in items}
        self._services_changed()

    async def _service_event(self, kind: str, svc: Obj) -> None:
        key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        if kind == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = svc
        self._services_changed()

    def _services_changed(self) -> None:
        self._hosts_dirty = True
        self._routes_dirty.set()

    def pods_changed(self) -> None:
        self._routes_dirty.set()

    def routes(self) -> dict[tuple[str, int], list[tuple[str, int]]]:
        views = [
            PodView(
                w.namespace,
                dict(w.pod["metadata"].get("labels") or {}),
                w.pod_ip,
                w.ready,
                list(w.pod["spec"].get("containers") or []),
            )
            for w in self.workers.values()
            if w.pod_ip
        ]
        routes = desired_routes(self.services.values(), views)
        k = self.services.get("default/kubernetes")
        if k is not None and k["spec"].get("clusterIP"):
            # The API server itself: its ClusterIP forwards to the real (loopback) API address.
            for p in k["spec"].get("ports") or []:
                routes[(k["spec"]["clusterIP"], int(p["port"]))] = [self.api_host_port]
        return routes

    async def _routes_loop(self) -> None:
        while True:
            await self._routes_dirty.wait()
            self._routes_dirty.clear()
            await asyncio.sleep(0.05)
            if self._hosts_dirty:
                self._hosts_dirty = False
                for w in list(self.workers.values()):
                    with contextlib.suppress(OSError):
                        w.write_hosts()
            try:
                await self.proxy.apply(self.routes())
            except Exception as e:
                log.warning("service routes: %s", e)

    # ---- main ------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        (self.state_dir / "pods").mkdir(parents=True, exist_ok=True)
        n = reap_orphans(self.state_dir)
        if n:
            log.info("killed %d process groups left by a previous node process", n)
        await self.register()
        sel = {"fieldSelector": f"spec.nodeName={self.name}"}
        self._tasks = [
            asyncio.create_task(self._lease_loop(), name="lease"),
            asyncio.create_task(self._node_status_loop(), name="node-status"),
            asyncio.create_task(self._routes_loop(), name="routes"),
            asyncio.create_task(
                self._watch("/api/v1/services", {}, self._services_listed, self._service_event), name="services"
            ),
            asyncio.create_task(self._watch("/api/v1/pods", sel, self._pods_listed, self._pod_event), name="pods"),
        ]
        log.info("node %s running (state %s)", self.name, self.state_dir)
        await stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        log.info("node %s shutting down: stopping %d pods", self.name, len(self.workers))
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers = list(self.workers.values())

        async def stop_one(w: PodWorker) -> None:
            grace = min(float(w.pod["spec"].get("terminationGracePeriodSeconds", 30)), SHUTDOWN_GRACE_CAP)
            await w.stop(grace)
            w.close()

        await asyncio.gather(*(stop_one(w) for w in workers), return_exceptions=True)
        for t in list(self._terminating.values()):
            t.cancel()
        await self.proxy.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.api.merge_patch(
                    f"/api/v1/nodes/{self.name}/status",
                    {"status": {"conditions": self.node_status(False, "KubeletNotReady")["conditions"]}},
                ),
                timeout=2,
            )
