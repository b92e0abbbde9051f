"""One pod's life on the node: volumes, pod IP, /etc/hosts, its containers (restarts, probes), status, teardown."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium_localcluster.node import runtime
from podium_localcluster.node.backoff import restart_delay, should_restart
from podium_localcluster.node.envvars import EnvError, Sources, container_env, expand, referenced_objects, service_env
from podium_localcluster.node.hosts import render_hosts
from podium_localcluster.node.kubeapi import ApiError
from podium_localcluster.node.probes import ProbeCounter, ProbeSpec, run_probe
from podium_localcluster.node.status import ContainerState, now, pod_status, restore_counts
from podium_localcluster.node.volumes import VolumeError, container_mounts, materialize, refresh, token_requests

if TYPE_CHECKING:
    from podium_localcluster.node.agent import NodeAgent

Obj = dict[str, Any]
log = logging.getLogger("podium.node.pod")
SHIM_DIR = Path(__file__).resolve().parent / "shim"
# A container that ran this long before exiting starts the back-off over (kubelet: 2 x max back-off).
BACKOFF_RESET_SECONDS = 600.0
# How often running pods' secret/configMap volumes are re-read (the kubelet's sync period is about a minute; a
# local cluster wants edits, e.g. an Agent's maintenance flag, to arrive within seconds).
VOLUME_REFRESH_SECONDS = 3.0


def pod_key(pod: Obj) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def import_path() -> list[Path]:
    """The directories on this Python's import path (what the pods' Python, the same installation, imports from)."""
    return [Path(p) for p in sys.path if p and Path(p).is_dir()]


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    started: float
    killed_by: str | None = None  # the probe ("liveness", "startup") that stopped it, for the terminated message
    probes: list[asyncio.Task[None]] = field(default_factory=list)


class PodWorker:
    def __init__(self, agent: NodeAgent, pod: Obj) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.dir = agent.state_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        self.hosts_file = self.dir / "etc-hosts"
        self.start_time = now()
        self.pod_ip: str | None = None
        self.states = {c["name"]: ContainerState(c["name"]) for c in pod["spec"].get("containers") or []}
        self.init_states = {c["name"]: ContainerState(c["name"]) for c in pod["spec"].get("initContainers") or []}
        if self.init_states:
            for s in self.states.values():
                s.reason = "PodInitializing"
        restore_counts(self.states, self.init_states, pod.get("status") or {})
        self.running: dict[str, Running] = {}
        self.volumes: dict[str, Path] = {}
        self._dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._status_task: asyncio.Task[None] | None = None
        self.finished = False

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._status_task = asyncio.create_task(self._status_writer(), name=f"status {pod_key(self.pod)}")
        self._tasks.append(asyncio.create_task(self._run(), name=f"pod {pod_key(self.pod)}"))

    def update(self, pod: Obj) -> None:
        self.pod = pod

    @property
    def ready(self) -> bool:
        return bool(self.states) and all(s.ready for s in self.states.values()) and not self._stopping.is_set()

    async def _run(self) -> None:
        prev = (self.pod.get("status") or {}).get("podIP")
        if prev and self.agent.ipam.get(self.uid) is None:
            with contextlib.suppress(ValueError):
                self.agent.ipam.reserve(self.uid, prev)
        self.pod_ip = self.agent.ipam.allocate(self.uid)
        st = (self.pod.get("status") or {}).get("startTime")
        if st:
            from datetime import datetime

            with contextlib.suppress(ValueError):
                self.start_time = datetime.fromisoformat(st.replace("Z", "+00:00"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.write_hosts()
        self.mark_dirty()
        try:
            await self._prepare_volumes()
        except (VolumeError, ApiError, KeyError) as e:
            # Like the kubelet's FailedMount: stay ContainerCreating and retry. A just-bound pod often gets 403 at
            # first (the Node authorizer learns pod -> configmap/secret edges a moment later), and a missing
            # Secret/ConfigMap may be created later.
            for s in self.all_states():
                s.state, s.reason, s.message = "waiting", "ContainerCreating", f"MountVolume failed: {e}"
            self.mark_dirty()
            log.info("pod %s: volumes (will retry): %s", pod_key(self.pod), e)
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=1)
                if self._stopping.is_set():
                    return
                try:
                    await self._prepare_volumes()
                    break
                except (VolumeError, ApiError, KeyError) as e2:
                    for s in self.all_states():
                        s.message = f"MountVolume failed: {e2}"
                    self.mark_dirty()
        # Volumes are in place: until the init containers are done everything waits on them (kubelet wording).
        waiting_reason = "PodInitializing" if self.init_states else "ContainerCreating"
        for s in self.all_states():
            if s.state == "waiting" and s.reason == "ContainerCreating":
                s.reason, s.message = waiting_reason, None
        self._tasks.append(asyncio.create_task(self._refresh_volumes(), name=f"volumes {pod_key(self.pod)}"))
        if not await self._run_init_containers():
            return
        policy = self.pod["spec"].get("restartPolicy", "Always")
        runners = [
            asyncio.create_task(
                self._container_loop(c, self.states[c["name"]], policy),
                name=f"container {pod_key(self.pod)}/{c['name']}",
            )
            for c in self.pod["spec"].get("containers") or []
        ]
        self._tasks.extend(runners)
        await asyncio.gather(*runners, return_exceptions=True)

    def all_states(self) -> list[ContainerState]:
        return [*self.init_states.values(), *self.states.values()]

    async def _run_init_containers(self) -> bool:
        """Each init container to completion, in order; False when the main containers must not start."""
        # An init container is retried on failure unless the pod never restarts anything (kubelet semantics).
        policy = "Never" if self.pod["spec"].get("restartPolicy", "Always") == "Never" else "OnFailure"
        for c in self.pod["spec"].get("initContainers") or []:
            state = self.init_states[c["name"]]
            if state.final and state.exit_code == 0:
                continue  # completed before the node restarted
            if c.get("restartPolicy") == "Always":
                # A sidecar runs beside the main containers for the pod's life; running it to completion here
                # would block the pod or run it wrongly, so say plainly that the node does not do it.
                state.state, state.reason = "waiting", "SidecarContainersNotSupported"
                state.message = "the podium node does not run init containers with restartPolicy Always (sidecars)"
                self.mark_dirty()
                await self._stopping.wait()
                return False
            await self._container_loop(c, state, policy)
            if not (state.final and state.exit_code == 0):
                return False  # failed for good (phase Failed) or the pod is being stopped
            state.ready = True
            self.mark_dirty()
        if self.init_states:
            for s in self.states.values():
                if s.state == "waiting" and s.reason == "PodInitializing":
                    s.reason = "ContainerCreating"
            self.mark_dirty()
        return True

    async def _refresh_volumes(self) -> None:
        if not any("secret" in v or "configMap" in v for v in self.pod["spec"].get("volumes") or []):
            return
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=VOLUME_REFRESH_SECONDS)
            if self._stopping.is_set():
                return
            try:
                sources = await self.fetch_sources()
                changed = await asyncio.to_thread(refresh, self.pod, self.dir, sources)
            except Exception as e:  # the API or the disk: the files stay as they are until the next period
                log.info("pod %s: volume refresh (will retry): %s", pod_key(self.pod), e)
                continue
            if changed:
                log.info("pod %s: updated volumes %s", pod_key(self.pod), ", ".join(changed))

    async def _prepare_volumes(self) -> None:
        sources = await self.fetch_sources()
        tokens: dict[tuple[str, int], str] = {}
        for aud, exp in token_requests(self.pod):
            tokens[(aud, exp)] = await self.agent.request_token(self.pod, aud, exp)
        assert self.pod_ip is not None
        self.volumes = materialize(self.pod, self.dir, sources, tokens, self.pod_ip)

    async def fetch_sources(self) -> Sources:
        secrets, cms = referenced_objects(self.pod)
        src = Sources()
        for name in secrets:
            obj = await self.agent.get_optional(f"/api/v1/namespaces/{self.namespace}/secrets/{name}")
            if obj is not None:
                src.secrets[name] = {
                    k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()
                }
        for name in cms:
            obj = await self.agent.get_optional(f"/api/v1/namespaces/{self.namespace}/configmaps/{name}")
            if obj is not None:
                src.config_maps[name] = dict(obj.get("data") or {})
        return src

    def write_hosts(self) -> None:
        if self.pod_ip is None:
            return
        text = render_hosts(self.name, self.pod_ip, self.namespace, list(self.agent.services.values()))
        # In place (same inode): the file is bind-mounted into running containers, a rename would not show there.
        with open(self.hosts_file, "a+") as f:
            f.seek(0)
            if f.read() != text:
                f.seek(0)
                f.truncate()
                f.write(text)

    # ---- containers ------------------------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        host, port = self.agent.api_host_port
        env = {
            "PATH": self.agent.pod_path,
            "HOME": "/root",
            "HOSTNAME": self.name,
            "PODIUM_POD_IP": self.pod_ip or "",
            "PODIUM_POD_NAME": self.name,
            "PODIUM_POD_NAMESPACE": self.namespace,
            "PODIUM_POD_UID": self.uid,
        }
        if self.pod["spec"].get("enableServiceLinks", True):
            env.update(service_env(list(self.agent.services.values()), self.namespace))
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": str(port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
                "KUBERNETES_PORT": f"tcp://{host}:{port}",
            }
        )
        return env

    async def _container_loop(self, c: Obj, state: ContainerState, policy: str) -> None:
        """Run one container, restarting it under `policy`, until it is final or the pod stops."""
        backoff_index = state.restart_count
        first = True
        while not self._stopping.is_set():
            if not first:
                delay = restart_delay(backoff_index, base=self.agent.backoff_base)
                if delay > 0:
                    state.state, state.reason = "waiting", "CrashLoopBackOff"
                    state.message = f"back-off {delay:g}s restarting failed container={c['name']} pod={self.name}"
                    self.mark_dirty()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                    if self._stopping.is_set():
                        return
                state.restart_count += 1
            first = False
            try:
                argv, env = await self._container_argv(c)
            except runtime.NotRunnable as e:
                state.state, state.reason, state.message, state.ready = "waiting", e.reason, e.message, False
                self.mark_dirty()
                # Not a crash: keep Waiting (and retry, the program may be installed later) without counting.
                first = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=10)
                continue
            except (EnvError, VolumeError, ApiError) as e:
                state.state, state.reason, state.message = "waiting", "CreateContainerConfigError", str(e)
                self.mark_dirty()
                first = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=5)
                continue
            log_path = self.dir / f"{c['name']}.log"
            try:
                proc = await runtime.start_process(argv, env, log_path)
            except OSError as e:
                state.state, state.reason, state.message = "waiting", "RunContainerError", str(e)
                self.mark_dirty()
                continue
            (self.dir / f"{c['name']}.pid").write_text(str(proc.pid))
            run = Running(proc, time.monotonic())
            self.running[c["name"]] = run
            state.state, state.reason, state.message, state.exit_code = "running", None, None, None
            state.started_at, state.finished_at, state.pid = now(), None, proc.pid
            # With a startup probe the container is neither started nor ready until that probe says so.
            state.started = c.get("startupProbe") is None
            state.ready = state.started and c.get("readinessProbe") is None and c["name"] in self.states
            self.mark_dirty()
            log.info("pod %s: started %s pid %d", pod_key(self.pod), c["name"], proc.pid)
            if c["name"] in self.states:  # init containers have no probes
                run.probes = self._start_probes(c, run, env)
            code = await proc.wait()
            # The leader is gone: sweep what it left in its group, so a restart never runs next to leftovers.
            runtime.signal_group(proc.pid, signal.SIGKILL)
            for t in run.probes:
                t.cancel()
            self.running.pop(c["name"], None)
            state.state, state.ready, state.pid, state.finished_at = "terminated", False, None, now()
            state.exit_code = code if code >= 0 else 128 - code
            state.reason = "Completed" if code == 0 else "Error"
            state.message = f"{run.killed_by} probe failed" if run.killed_by else None
            ran_for = time.monotonic() - run.started
            if ran_for >= BACKOFF_RESET_SECONDS:
                backoff_index = 0
            else:
                backoff_index += 1
            if self._stopping.is_set() or not should_restart(policy, state.exit_code):
                state.final = True
                self.mark_dirty()
                return
            state.last_terminated = state.terminated_dict()
            self.mark_dirty()
            log.info("pod %s: %s exited %d, restarting", pod_key(self.pod), c["name"], state.exit_code)

    async def _container_argv(self, c: Obj) -> tuple[list[str], dict[str, str]]:
        assert self.pod_ip is not None
        sources = await self.fetch_sources()
        env = container_env(self.pod, c, sources, self.pod_ip, self._base_env())
        # Our shim first so wildcard binds land on the pod's address; the program's own PYTHONPATH follows.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIM_DIR), env.get("PYTHONPATH", "")) if p)
        program = [expand(x, env) for x in list(c.get("command") or []) + list(c.get("args") or [])]
        if not c.get("command"):
            program = []
        program[:1] = [runtime.resolve_program(program, env.get("PATH", self.agent.pod_path))]
        mounts = container_mounts(c, self.volumes)
        workdir = c.get("workingDir") or str(self.dir / "rootfs")
        stage = runtime.stage_dir(
            [self.dir / "stage", Path("/run/podium-node/stage"), Path("/var/lib/podium-node/stage")],
            [m.target for m in mounts],
        )
        # What the container needs of the host even under a volume mounted above it (say an emptyDir at /tmp
        # while the checkout lives under /tmp): the program, the Python it runs on, PYTHONPATH, the pod's dir, and
        # the node's import path: pods run the node's own Python, and an editable install of the programs they run
        # (`podium agent`) puts its checkout there.
        keep = [
            Path(program[0]).parent.parent,
            *import_path(),
            Path(sys.prefix),
            Path(sys.base_prefix),
            self.dir,
            *(Path(p) for p in env["PYTHONPATH"].split(os.pathsep) if p),
        ]
        argv = runtime.launch_argv(program, mounts, self.hosts_file, workdir, stage=stage, keep_visible=keep)
        return argv, env

    def _start_probes(self, c: Obj, run: Running, env: dict[str, str]) -> list[asyncio.Task[None]]:
        if c.get("startupProbe"):
            # Readiness and liveness wait for it: _probe_loop starts them once the startup probe succeeds.
            spec = ProbeSpec.parse(c["startupProbe"])
            return [asyncio.create_task(self._probe_loop("startupProbe", spec, c, run, env))]
        return self._steady_probes(c, run, env)

    def _steady_probes(self, c: Obj, run: Running, env: dict[str, str]) -> list[asyncio.Task[None]]:
        tasks = []
        for kind in ("readinessProbe", "livenessProbe"):
            if c.get(kind):
                spec = ProbeSpec.parse(c[kind])
                tasks.append(asyncio.create_task(self._probe_loop(kind, spec, c, run, env)))
        return tasks

    async def _probe_loop(self, kind: str, spec: ProbeSpec, c: Obj, run: Running, env: dict[str, str]) -> None:
        state = self.states[c["name"]]
        counter = ProbeCounter(spec)
        # Counted from the container's start, as the kubelet does, also for probes that waited on a startup probe.
        await asyncio.sleep(max(0.0, spec.initial_delay - (time.monotonic() - run.started)))
        while run.proc.returncode is None:
            exec_argv = None
            if "exec" in spec.handler:
                cmd = [expand(x, env) for x in spec.handler["exec"].get("command") or []]
                # Enter the container's mount namespace so the probe sees the pod's files.
                exec_argv = ["nsenter", "--target", str(run.proc.pid), "--mount", "--", *cmd]
            assert self.pod_ip is not None
            ok = await run_probe(spec, c, self.pod_ip, exec_argv, env)
            verdict = counter.record(ok)
            if kind == "readinessProbe":
                if verdict is not None and verdict != state.ready:
                    state.ready = verdict
                    self.mark_dirty()
            elif kind == "startupProbe" and verdict is True:
                state.started = True
                state.ready = c.get("readinessProbe") is None
                self.mark_dirty()
                log.info("pod %s: %s startup probe succeeded", pod_key(self.pod), c["name"])
                run.probes.extend(self._steady_probes(c, run, env))
                return
            elif verdict is False:
                what = kind.removesuffix("Probe")
                log.info("pod %s: %s %s probe failed, restarting", pod_key(self.pod), c["name"], what)
                run.killed_by = what
                grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
                await runtime.stop_process(run.proc, grace)
                return
            await asyncio.sleep(spec.period)

    # ---- status ----------------------------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        self._dirty.set()
        self.agent.pods_changed()

    def status(self) -> Obj:
        return pod_status(
            list(self.states.values()), self.pod_ip, self.start_time, init_containers=list(self.init_states.values())
        )

    async def _status_writer(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await asyncio.sleep(0.05)  # coalesce bursts of changes into one write
            try:
                await self.agent.api.merge_patch(
                    f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", {"status": self.status()}
                )
            except ApiError as e:
                if e.status == 404:
                    return
                log.warning("pod %s: status update failed: %s", pod_key(self.pod), e)
                await asyncio.sleep(1)
                self._dirty.set()
            except Exception as e:  # network blips: try again, a stale status is worse than a late one
                log.warning("pod %s: status update failed: %s", pod_key(self.pod), e)
                await asyncio.sleep(1)
                self._dirty.set()

    # ---- teardown --------------------------------------------------------------------------------------------

    async def stop(self, grace: float) -> None:
        """SIGTERM every container's group, SIGKILL after `grace`, then wait for the container loops to end."""
        self._stopping.set()
        await asyncio.gather(
            *(runtime.stop_process(r.proc, grace) for r in list(self.running.values())), return_exceptions=True
        )
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def flush_status(self) -> None:
        if self._status_task is not None:
            with contextlib.suppress(ApiError, OSError, Exception):
                await asyncio.wait_for(
                    self.agent.api.merge_patch(
                        f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", {"status": self.status()}
                    ),
                    timeout=5,
                )

    def close(self, keep_logs: bool = True) -> None:
        if self._status_task is not None:
            self._status_task.cancel()
        self.agent.ipam.release(self.uid)
        shutil.rmtree(self.dir / "volumes", ignore_errors=True)
        for f in self.dir.glob("*.pid"):
            f.unlink(missing_ok=True)
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)
