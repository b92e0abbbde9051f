"""`podium run state|snapshot|rollback|broadcast|approve|reject`: a run's blackboard, its messages, its approvals.

The shared state and the messages live in Redis (``--redis-url``); approvals go through the Orchestration's
annotations (``podium.dev/approve``, ``podium.dev/reject``), so whoever may patch the Orchestration may decide, the
API server records who did, and GitOps users can do the same in their manifests.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from podium.api.common import GROUP, VERSION
from podium.cli.redis_access import with_redis

PLURAL = "orchestrations"
COMMANDS = ("state", "snapshot", "rollback", "broadcast", "approve", "reject")
VALUE_CHARS = 100


class NotFound(SystemExit):
    """The Orchestration does not exist: one line, exit code 1."""


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("state", help="print a run's shared state (blackboard): keys, versions, writers, values")
    p.add_argument("name")
    p.add_argument("--key", help="only this key (its value in full, as JSON)")
    p.add_argument("--history", action="store_true", help="the changes instead (writes, resolutions, rollbacks)")
    p.add_argument("--audit", action="store_true", help="the conflict resolutions instead")
    p.add_argument("--snapshots", action="store_true", help="the snapshots instead")
    p.add_argument("--limit", type=int, default=100)
    p = sub.add_parser("snapshot", help="mark the run's shared state now; prints the id `podium run rollback` takes")
    p.add_argument("name")
    p = sub.add_parser("rollback", help="restore the run's shared state to a snapshot; subscribers are told")
    p.add_argument("name")
    p.add_argument("snapshot", help="a snapshot id (`podium run state NAME --snapshots`)")
    p = sub.add_parser("broadcast", help="publish a message to the run: its agents subscribed to TYPE get it")
    p.add_argument("name")
    p.add_argument("type", help="the message type, e.g. review.requested")
    p.add_argument("payload", help="the message, as JSON (a bare word is a string)")
    for verb in ("approve", "reject"):
        p = sub.add_parser(verb, help=f"{verb} a step (or the final result) the run waits for")
        p.add_argument("name")
        p.add_argument(
            "--step", help="the step (status.approvals; `result`: the final result); default: the one waiting"
        )
        p.add_argument("--comment", help="why, recorded with the decision")
        p.add_argument("--by", help="who decides (default: your kubeconfig user, else your login name)")


# ------------------------------------------------------------------------------------------------ Kubernetes
def kube_api() -> Any:
    """The custom-objects API of the kubeconfig's context, else of the pod's service account."""
    from kubernetes import client, config

    try:
        config.load_kube_config()
    except Exception:
        config.load_incluster_config()
    return client.CustomObjectsApi()


def get_run(api: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    try:
        found: dict[str, Any] = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as e:
        if e.status == 404:
            raise NotFound(f"podium run: orchestration {name!r} not found in namespace {namespace!r}") from None
        raise
    return found


def who(explicit: str | None) -> str:
    """Who decides or broadcasts: as given, else the kubeconfig's current user, else the login name."""
    if explicit:
        return explicit
    try:
        from kubernetes import config

        _, current = config.list_kube_config_contexts()
        user = str(current["context"]["user"])
        if user:
            return user
    except Exception:
        pass
    return getpass.getuser()


# ------------------------------------------------------------------------------------------------ approvals
def waiting_steps(status: dict[str, Any]) -> list[str]:
    return [a["step"] for a in status.get("approvals") or [] if a.get("state") == "Waiting"]


def chosen_step(name: str, status: dict[str, Any], step: str | None) -> str:
    """The step to decide: the one given, else the only one waiting; a clear error otherwise."""
    if step:
        return step
    waiting = waiting_steps(status)
    if len(waiting) == 1:
        return waiting[0]
    if not waiting:
        raise SystemExit(
            f"podium run: {name} waits for no approval now (phase {status.get('phase') or 'Pending'}); name the step "
            "with --step to decide it before it is ready"
        )
    raise SystemExit(f"podium run: {name} waits for several approvals ({', '.join(waiting)}): choose one with --step")


def decision_patch(annotations: dict[str, str], verb: str, step: str, comment: str | None, by: str) -> dict[str, Any]:
    """The merge patch of metadata.annotations that records one decision (podium.operator.orchestrations.approvals
    reads them): the step joins the approve or reject list; the comment and who go with it."""
    from podium.operator.orchestrations import approvals as annotations_mod

    key = annotations_mod.APPROVE if verb == "approve" else annotations_mod.REJECT
    steps = annotations_mod.steps_of(annotations.get(key))
    if step not in steps:
        steps.append(step)
    return {
        "metadata": {
            "annotations": {
                key: ",".join(steps),
                annotations_mod.COMMENT: comment,  # None removes an older decision's comment
                annotations_mod.DECIDED_BY: by,
            }
        }
    }


def decide(namespace: str, name: str, verb: str, step: str | None, comment: str | None, by: str | None) -> int:
    api = kube_api()
    obj = get_run(api, namespace, name)
    status = obj.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        print(f"podium run: {name} already {status['phase'].lower()}: nothing to {verb}", file=sys.stderr)
        return 1
    chosen = chosen_step(name, status, step)
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    patch = decision_patch(annotations, verb, chosen, comment, who(by))
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
    print(f"{name}: {chosen} {'approved' if verb == 'approve' else 'rejected'}")
    return 0


# ------------------------------------------------------------------------------------------------ Redis
def _short(value: Any, limit: int = VALUE_CHARS) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stamp(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def state_lines(rows: list[tuple[str, Any, int, str]]) -> list[str]:
    """KEY VERSION WRITER VALUE, one line per key (values shortened)."""
    if not rows:
        return []
    width = max(len("KEY"), *(len(k) for k, *_ in rows))
    writer = max(len("WRITER"), *(len(w) for *_, w in rows))
    lines = [f"{'KEY':<{width}}  VERSION  {'WRITER':<{writer}}  VALUE"]
    lines += [f"{k:<{width}}  {v:>7}  {w:<{writer}}  {_short(value)}" for k, value, v, w in rows]
    return lines


def show_state(args: argparse.Namespace) -> int:
    from podium.dataplane.state import SharedState

    get_run(kube_api(), args.namespace, args.name)

    async def read(client: Any) -> list[str]:
        state = SharedState(client, args.namespace, args.name)
        if args.history:
            return [
                f"{_stamp(c.at)}  {c.key}  {c.kind} v{c.version} by {c.writer}: {_short(c.old)} -> {_short(c.new)}"
                for c in await state.history(args.key, limit=args.limit)
            ]
        if args.audit:
            return [
                f"{_stamp(r.at)}  {r.key}  {r.strategy}: {r.reason} -> {_short(r.winner)}"
                for r in await state.audit(limit=args.limit)
            ]
        if args.snapshots:
            return [f"{sid}  {_stamp(at)}" for sid, at in await state.snapshots(limit=args.limit)]
        if args.key:
            value, version = await state.get(args.key)
            if version == 0:
                raise SystemExit(f"podium run: {args.name} has no key {args.key!r} in its shared state")
            return [json.dumps(value, indent=2, ensure_ascii=False)]
        return state_lines(await state.listing())

    lines = with_redis(args.redis_url, read)
    if not lines:
        print(f"{args.name}: nothing in its shared state", file=sys.stderr)
        return 0
    print("\n".join(lines))
    return 0


def snapshot(args: argparse.Namespace) -> int:
    from podium.dataplane.state import SharedState

    get_run(kube_api(), args.namespace, args.name)
    sid = with_redis(args.redis_url, lambda client: SharedState(client, args.namespace, args.name).snapshot())
    print(sid)
    return 0


def rollback(args: argparse.Namespace) -> int:
    from podium.dataplane.state import SharedState, SnapshotNotFound

    get_run(kube_api(), args.namespace, args.name)
    writer = f"user:{who(None)}"
    try:
        restored = with_redis(
            args.redis_url,
            lambda client: SharedState(client, args.namespace, args.name).rollback(args.snapshot, writer=writer),
        )
    except SnapshotNotFound as e:
        print(f"podium run: {e}", file=sys.stderr)
        return 1
    told = "subscribers are told with their next task"
    print(f"{args.name}: {restored} key(s) restored to snapshot {args.snapshot}; {told}")
    return 0


def parse_payload(text: str) -> Any:
    """JSON, or the text itself when it is not JSON (so `podium run broadcast r note hello` works)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def broadcast(args: argparse.Namespace) -> int:
    from podium.dataplane.bus import Bus

    get_run(kube_api(), args.namespace, args.name)
    sender = f"user:{who(None)}"

    async def send(client: Any) -> str:
        bus = Bus(client)
        try:
            return await bus.publish(f"{args.namespace}/{args.name}", args.type, parse_payload(args.payload), sender)
        finally:
            await bus.close()

    entry = with_redis(args.redis_url, send)
    print(f"{args.name}: {args.type} published ({entry}); its subscribed agents get it with their next task")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        if args.command == "state":
            return show_state(args)
        if args.command == "snapshot":
            return snapshot(args)
        if args.command == "rollback":
            return rollback(args)
        if args.command == "broadcast":
            return broadcast(args)
        return decide(args.namespace, args.name, args.command, args.step, args.comment, args.by)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1
        raise
