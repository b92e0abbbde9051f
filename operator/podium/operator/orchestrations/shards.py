"""Runs sharded across operator replicas: each replica drives the Orchestrations it owns.

kopf peering elects one replica for Agents and Teams and pauses the others, which is right for reconciling but
would leave every run on one process. So runs are not kopf daemons: every replica watches the Orchestrations
itself (:class:`RunWatch`) and, every ``lease/3`` seconds, heartbeats into its group
(:class:`podium.dataplane.shards.Shards`), works out which active runs it owns (:func:`owner`, rendezvous
hashing of the run's uid over the live replicas: a replica joining or leaving moves only its share) and drives
those while it holds their lease (renewed from a thread of its own,
:class:`~podium.operator.orchestrations.leases.LeaseKeeper`, so a replica whose event loop falls behind keeps
them). A replica killed with SIGKILL stops renewing: after ``lease`` seconds it is no longer a member and its run
leases have lapsed, so the new owners take its runs over, and the engine's journal resumes each one without
dispatching a finished or in-flight task again.

The owner of a run (by the same hash) also looks after its object, which kopf did before on the one elected
replica, reading every status patch of every run to do so (:func:`chores`): it puts the ``podium.dev/cleanup``
finalizer on it, and once it is deleted cleans up (its queued tasks cancelled, its keys purged) and removes the
finalizer; a spec changed after the run finished earns a ``SpecIgnored`` condition.

Decisions are pure (:func:`owner`, :func:`plan`, :func:`chores`); :class:`Sharder` acts on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from podium.api.common import FINALIZER
from podium.dataplane.shards import RunRef, Shards
from podium.operator.kube import Kube, objects_path
from podium.operator.orchestrations import status as st
from podium.operator.orchestrations.leases import LeaseKeeper

log = logging.getLogger("podium.operator.orchestrations.shards")

Key = tuple[str, str]  # namespace, name


def owner(uid: str, members: Iterable[str]) -> str | None:
    """The member that owns a run (rendezvous hashing): every replica computes the same answer from the same
    members, and when one leaves only the runs it owned move."""
    return _owner(uid, tuple(members))


# A round (up to 20 a second, one per burst of watch events) asks the owner of every run, twice (what to drive, what
# to look after), and the members rarely change: for 2,000 runs, 12 ms a round hashed anew (a quarter of a core at
# 20 rounds a second), 2 ms cached.
@functools.lru_cache(maxsize=1 << 15)
def _owner(uid: str, members: tuple[str, ...]) -> str | None:
    best: tuple[bytes, str] | None = None
    for member in members:
        score = hashlib.blake2b(f"{member}\0{uid}".encode(), digest_size=8).digest()
        if best is None or score > best[0]:
            best = (score, member)
    return None if best is None else best[1]


def active(body: Mapping[str, Any]) -> bool:
    """A run that still needs a driver: not finished, not being deleted."""
    meta = body.get("metadata") or {}
    phase = (body.get("status") or {}).get("phase")
    return phase not in st.TERMINAL and not meta.get("deletionTimestamp")


def run_ref(body: Mapping[str, Any]) -> RunRef:
    meta = body["metadata"]
    return meta["namespace"], meta["name"], meta["uid"]


@dataclass(frozen=True)
class Plan:
    """One round's decision for a replica: runs to stop (owned elsewhere now, gone or finished) and runs to
    try to take (owned here, not yet driven)."""

    stop: frozenset[RunRef]
    take: frozenset[RunRef]


def plan(me: str, members: list[str], runs: Iterable[Mapping[str, Any]], driving: Iterable[RunRef]) -> Plan:
    mine = {run_ref(b) for b in runs if active(b) and owner(b["metadata"]["uid"], members) == me}
    driving = set(driving)
    return Plan(stop=frozenset(driving - mine), take=frozenset(mine - driving))


@dataclass(frozen=True)
class Chores:
    """What a replica does for the run objects it owns, beside driving them: ``guard`` (put the finalizer on),
    ``finalize`` (deleted: clean up, then remove the finalizer), ``note`` (a spec change after the end)."""

    guard: tuple[dict[str, Any], ...] = ()
    finalize: tuple[dict[str, Any], ...] = ()
    note: tuple[dict[str, Any], ...] = ()


def chores(me: str, members: list[str], runs: Iterable[Mapping[str, Any]]) -> Chores:
    guard, finalize, note = [], [], []
    for body in runs:
        meta = body["metadata"]
        if owner(meta["uid"], members) != me:
            continue
        held = FINALIZER in (meta.get("finalizers") or ())
        status = body.get("status") or {}
        if meta.get("deletionTimestamp"):
            if held:
                finalize.append(dict(body))
        elif not held:
            guard.append(dict(body))
        elif status.get("phase") in st.TERMINAL and status.get("observedGeneration") != meta.get("generation"):
            note.append(dict(body))
    return Chores(tuple(guard), tuple(finalize), tuple(note))


def replica_id() -> str:
    """Unique per process: the pod name (or host), the pid and a random suffix (a restarted pod is a new member)."""
    base = os.environ.get("PODIUM_REPLICA") or os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{base}-{os.getpid()}-{secrets.token_hex(2)}"


def group_of(namespaces: list[str]) -> str:
    """Replicas share runs only with replicas that watch the same namespaces."""
    if not namespaces:
        return "all"
    joined = ".".join(sorted(set(namespaces)))
    return f"ns.{joined}" if len(joined) < 200 else "ns." + hashlib.blake2b(joined.encode(), digest_size=12).hexdigest()


class RunWatch:
    """The Orchestrations of the watched namespaces, kept current by list + watch in a thread of their own."""

    def __init__(self, kube: Kube, namespaces: list[str], changed: Callable[[], None]) -> None:
        self.kube, self.namespaces, self.changed = kube, namespaces or [""], changed
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._listed: set[str] = set()
        self.watch_seconds = 60  # the API server ends each watch after this; it goes on from where it was

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for ns in self.namespaces:
            t = threading.Thread(target=self._follow, args=(ns,), name=f"watch-orchestrations-{ns}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()

    def _watch(self, path: str, resource_version: str, timeout_seconds: int, **_: Any) -> Any:
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
            "allowWatchBookmarks": "true",
        }
        return self.kube.request("GET", path, query=query)

    def _follow(self, namespace: str) -> None:
        """List once, then watch on from the last version seen (events and bookmarks bring it), as an informer
        does: a watch the API server ends after ``watch_seconds`` goes on where it was. Only a version too old to
        watch from (410 Gone) or an error lists again: every run's object read anew each minute was megabytes of
        JSON a replica parsed, and the API server served, at a few thousand runs."""
        path = objects_path("orchestrations", namespace)
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self.kube.read(path)
                    self._post(self._replace, namespace, listed.get("items") or [])
                    version = listed["metadata"]["resourceVersion"]
                stream = watch.Watch()
                # A lambda: the client's Watch reads a function's annotations and docstring for a model to
                # decode the events into; a lambda has neither, so events stay the JSON they came as.
                follow = lambda **kw: self._watch(path, **kw)  # noqa: E731
                for event in stream.stream(follow, resource_version=version, timeout_seconds=self.watch_seconds):
                    if self._stop.is_set():
                        stream.stop()
                        break
                    obj = event["object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] != "BOOKMARK":
                        self._post(self._apply, event["type"], obj)
            except ApiException as e:
                version = None
                if e.status != 410:  # 410: our resourceVersion is too old; list again
                    log.warning("watching orchestrations in %s: %s; listing again", namespace or "all", e.reason)
                    self._stop.wait(2)
            except Exception as e:  # the API server away: keep trying, the runs keep going meanwhile
                version = None
                log.warning("watching orchestrations in %s: %s; listing again", namespace or "all", e)
                self._stop.wait(2)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: shutting down
                self._loop.call_soon_threadsafe(fn, *args)

    def _replace(self, namespace: str, items: list[dict[str, Any]]) -> None:
        fresh = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in items}
        for key in [k for k in self.bodies if not namespace or k[0] == namespace]:
            if key not in fresh:
                self.bodies.pop(key)
        for key, body in fresh.items():
            self._store(key, body)
        self._listed.add(namespace)
        if len(self._listed) == len(self.namespaces):
            self.synced.set()
        self.changed()

    def _apply(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "DELETED":
            self.bodies.pop(key, None)
        elif kind in ("ADDED", "MODIFIED"):
            self._store(key, body)
        else:
            return
        self.changed()

    def _store(self, key: Key, body: dict[str, Any]) -> None:
        # A driver holds the dict it was given and reads spec.suspend and the approval annotations from it while
        # the run goes: update that same dict in place, unless the name now belongs to a new run (another uid).
        old = self.bodies.get(key)
        if old is not None and old["metadata"].get("uid") == body["metadata"].get("uid"):
            old.clear()
            old.update(body)
        else:
            self.bodies[key] = body


# Starts one run's drive: (live body, stopping) -> coroutine that returns when the run ended or stopping() is true.
Drive = Callable[[dict[str, Any], Callable[[], bool]], Any]
# After a run's deletion: cancel its queued tasks and purge its keys.
Cleanup = Callable[[dict[str, Any]], Any]
# One chore on a run's object (:class:`Chores`).
Chore = Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class ObjectChores:
    """How the chores are done: put the finalizer on, take it off (after ``cleanup``), note an ignored spec; and
    ``stalled(body, why)``: say on the object why its deletion waits (its cleanup failed, or this replica cannot
    reach Redis to do it), once until the cleanup succeeds, so ``kubectl delete`` does not hang without a reason."""

    guard: Chore
    release: Chore
    note: Chore
    stalled: Callable[[dict[str, Any], str], None] = lambda body, why: None


@dataclass
class Driving:
    task: asyncio.Task[Any]
    body: dict[str, Any]
    stopping: bool = False


class Sharder:
    """Drives this replica's share of the runs; see the module's docstring."""

    def __init__(
        self,
        kube: Kube,
        redis: aioredis.Redis,
        namespaces: list[str],
        drive: Drive,
        cleanup: Cleanup,
        connect: Callable[[], aioredis.Redis],
        *,
        lease_seconds: float = 6.0,
        replica: str | None = None,
        objects: ObjectChores | None = None,
    ) -> None:
        self.replica = replica or replica_id()
        self.group = group_of(namespaces)
        self.shards = Shards(redis, self.group, self.replica, lease_seconds)
        self.lease = lease_seconds
        # ``connect`` makes the keeper's own client: it renews from a thread of its own (see leases.py).
        self.keeper = LeaseKeeper(connect, self.group, self.replica, lease_seconds, self._lost)
        self.suspect: set[RunRef] = set()  # driven runs whose lease the keeper found lapsed or taken
        self.drive, self.cleanup = drive, cleanup
        self.watch = RunWatch(kube, namespaces, self._wake)
        self.driving: dict[RunRef, Driving] = {}
        self.finished: set[str] = set()  # uids whose drive returned by itself: never driven again by this replica
        self.members: list[str] = []
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._cleanups: set[asyncio.Task[Any]] = set()
        self.objects = objects
        self._chores: dict[tuple[str, str], asyncio.Task[Any]] = {}  # (what, uid) -> the chore under way
        self._chores_done: dict[tuple[str, str], str] = {}  # (what, uid) -> the resourceVersion it was done on
        self._stalled: set[str] = set()  # uids of deleted runs told why their cleanup waits

    def _wake(self) -> None:
        self._wakeup.set()

    def _lost(self, refs: list[RunRef]) -> None:
        self.suspect.update(refs)
        self._wake()

    async def start(self) -> None:
        self.watch.start()
        self.keeper.start()
        self._loop_task = asyncio.create_task(self._run(), name="podium run sharder")
        log.info("run sharding: replica %s in group %s, lease %.1fs", self.replica, self.group, self.lease)

    async def stop(self) -> None:
        """Stop driving (the runs stay where they are in their journals), give the leases and membership up so the
        other replicas take the runs over at their next round."""
        self.watch.stop()
        await self.keeper.stop()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        refs = list(self.driving)
        await self._stop_driving(refs)
        with contextlib.suppress(Exception):
            await self.shards.release(refs)
            await self.shards.leave()
        await asyncio.gather(*self._cleanups, *self._chores.values(), return_exceptions=True)

    async def _run(self) -> None:
        await self.watch.synced.wait()
        interval = self.lease / 3
        # Joining: heartbeat, then give replicas started at the same moment (an install with two replicas, a node
        # restart) one interval to do the same, so they split the runs at once rather than the first one taking
        # them all and handing half back.
        with contextlib.suppress(Exception):
            await self.shards.beat()
            await asyncio.sleep(interval)
        beaten = -interval  # monotonic time of the last heartbeat
        while True:
            started = time.monotonic()
            beat = started - beaten >= interval
            try:
                await self.round(beat=beat)
                if beat:
                    beaten = started
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis away: the leases lapse and the others (or we, later) take over
                log.warning("run sharding round failed: %s", e)
                self._deletions_wait(e)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.05, beaten + interval - time.monotonic()))
            # A burst of watch events (200 runs applied at once) makes one round, not 200.
            await asyncio.sleep(0.05)

    async def round(self, *, beat: bool = True) -> None:
        """Decide, act: stop what moved away, take what is now ours. With ``beat`` (every lease/3 seconds) also
        heartbeat and read the live members. The leases of the runs it drives are the keeper's to renew; a run
        whose lease the keeper found lapsed or taken is held again here if it is free, else stopped. So a round the
        watch wakes (a new run, a deletion, each status patch of a running one) touches only what changed."""
        await self.shards.release(self._reap())
        if beat or not self.members:
            self.members = await self.shards.beat()
            if self.replica not in self.members:  # our own beat is older than the lease (a long pause): wait for it
                self.members = sorted([*self.members, self.replica])
        bodies = [b for b in self.watch.bodies.values() if b["metadata"].get("uid") not in self.finished]
        decision = plan(self.replica, self.members, bodies, self.driving)
        todo = chores(self.replica, self.members, self.watch.bodies.values()) if self.objects else Chores()
        finalizing = {b["metadata"]["uid"] for b in todo.finalize}
        gone = {ref for ref in decision.stop if (ref[0], ref[1]) not in self.watch.bodies}
        deleting = {ref for ref in decision.stop if _deleting(self.watch.bodies.get((ref[0], ref[1])))}
        await self._stop_driving(decision.stop)
        for ref in gone | deleting:
            if ref[2] not in finalizing:  # else its finalizer's chore cleans up, now that the drive has stopped
                self._clean_up_later(ref, self.watch.bodies.get((ref[0], ref[1])))
        self._do_chores(todo)
        await self.shards.release(decision.stop)
        suspect = sorted(ref for ref in self.suspect if ref in self.driving)
        self.suspect.clear()
        held = await self.shards.hold([*suspect, *sorted(decision.take)])
        lost = [ref for ref in suspect if not held.get(ref)]
        if lost:  # another replica has the lease (we paused past it): it drives the run now
            log.warning("lost the lease of %d run(s) to another replica", len(lost))
            await self._stop_driving(lost)
        by_ref = {run_ref(b): b for b in bodies}
        for ref in sorted(decision.take):
            if held.get(ref) and ref in by_ref:
                self._start(ref, by_ref[ref])
        self.keeper.keep(self.driving)

    def _start(self, ref: RunRef, body: dict[str, Any]) -> None:
        state = Driving(task=None, body=body)  # type: ignore[arg-type]

        def stopping() -> bool:
            return state.stopping

        state.task = asyncio.create_task(self.drive(body, stopping), name=f"run {ref[0]}/{ref[1]}")
        self.driving[ref] = state

    def _reap(self) -> list[RunRef]:
        """Forget drives that ended (their leases are to be given up); a drive that returned by itself (the run
        finished) is not started again."""
        ended = []
        for ref, state in list(self.driving.items()):
            if state.task.done():
                del self.driving[ref]
                if not state.stopping:
                    self.finished.add(ref[2])
                    if not state.task.cancelled() and state.task.exception() is not None:
                        log.error("run %s/%s ended with %r", ref[0], ref[1], state.task.exception())
                        self.finished.discard(ref[2])  # try again next round
                ended.append(ref)
        live = {b["metadata"].get("uid") for b in self.watch.bodies.values()}
        self.finished &= live
        for key in [k for k in self._chores_done if k[1] not in live]:  # chores of runs gone from the cluster
            del self._chores_done[key]
        self._stalled &= live
        return ended

    async def _stop_driving(self, refs: Iterable[RunRef]) -> None:
        states = [self.driving.pop(ref) for ref in list(refs) if ref in self.driving]
        for state in states:
            state.stopping = True  # drive() notices within 0.2 s and stops; cancel as a backstop
        if states:
            _, pending = await asyncio.wait([s.task for s in states], timeout=2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*(s.task for s in states), return_exceptions=True)

    def _do_chores(self, todo: Chores) -> None:
        """Start each chore not under way already, nor done on this version of its object (the watch may not have
        brought the version it made yet). One that fails is logged and comes up again in a later round (the object
        still needs it), at the latest with the next heartbeat round."""
        objects = self.objects
        if objects is None:
            return

        async def finalize(body: dict[str, Any]) -> None:
            try:
                await self.cleanup(body)
                await objects.release(body)
            except Exception as e:
                self._stall(body, f"the run's cleanup failed: {e}")
                raise
            self._stalled.discard(body["metadata"]["uid"])

        for what, chore, bodies in (
            ("guard", objects.guard, todo.guard),
            ("finalize", finalize, todo.finalize),
            ("note", objects.note, todo.note),
        ):
            for body in bodies:
                meta = body["metadata"]
                key, version = (what, meta["uid"]), meta.get("resourceVersion")
                if key in self._chores or (version is not None and self._chores_done.get(key) == version):
                    continue
                task = asyncio.create_task(chore(body), name=f"run {what} {meta['namespace']}/{meta['name']}")
                self._chores[key] = task
                task.add_done_callback(functools.partial(self._chore_done, key, version))

    def _chore_done(self, key: tuple[str, str], version: str | None, task: asyncio.Task[Any]) -> None:
        self._chores.pop(key, None)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.warning("run %s failed, to be tried again: %s", key[0], task.exception())
        elif version is not None:
            self._chores_done[key] = version

    def _deletions_wait(self, error: BaseException) -> None:
        """A round failed (Redis away, most likely): the deleted runs this replica would clean up wait for it."""
        if self.objects is None or not self.members:
            return
        for body in chores(self.replica, self.members, self.watch.bodies.values()).finalize:
            self._stall(body, f"the operator cannot clean up the run now: {error}")

    def _stall(self, body: dict[str, Any], why: str) -> None:
        uid = body["metadata"]["uid"]
        if self.objects is not None and uid not in self._stalled:
            self._stalled.add(uid)
            self.objects.stalled(body, f"deletion waits: {why} (tried again every {self.lease / 3:.3g} s)")

    def _clean_up_later(self, ref: RunRef, body: dict[str, Any] | None) -> None:
        snapshot = body or {"metadata": {"namespace": ref[0], "name": ref[1], "uid": ref[2]}}
        task = asyncio.create_task(self.cleanup(snapshot))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)


def _deleting(body: Mapping[str, Any] | None) -> bool:
    return body is not None and bool((body.get("metadata") or {}).get("deletionTimestamp"))
