"""`podium run`: submit an Orchestration, watch it, show its result and its conversation history; its shared state,
messages and approvals (``podium.cli.run_state``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from podium.api.common import GROUP, VERSION
from podium.api.validation import SpecError, parse
from podium.cli import run_state
from podium.cli.redis_access import with_redis

PLURAL = "orchestrations"
FINISHED = ("Succeeded", "Failed")


def _get(api: Any, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return obj


def submit(path: Path, namespace: str) -> tuple[list[str], list[str]]:
    """Create or update every Orchestration in the file: (their names, the other objects in it: Agents and Teams,
    validated and not applied)."""
    from kubernetes.client.exceptions import ApiException

    api = run_state.kube_api()
    names, skipped = [], []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        parse(doc)  # the same checks as the API server, with the same messages, before anything is sent
        if doc["kind"] != "Orchestration":
            skipped.append(f"{doc['kind']} {doc['metadata']['name']}")
            continue
        name = doc["metadata"]["name"]
        try:
            current = _get(api, namespace, name)
            doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, doc)
        except ApiException as e:
            if e.status != 404:
                raise
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
        names.append(name)
    return names, skipped


def describe(status: dict[str, Any]) -> str:
    parts = [status.get("phase") or "Pending", status.get("progress") or "0/0"]
    if status.get("cost"):
        parts.append(f"cost {status['cost']:.4f}")
    if status.get("tokens"):
        parts.append(f"tokens {status['tokens']}")
    if status.get("degraded"):
        parts.append("degraded")
    if status.get("message"):
        parts.append(status["message"])
    return "  ".join(parts)


def watch(namespace: str, name: str, timeout: float, interval: float = 1.0) -> int:
    api = run_state.kube_api()
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        status = _get(api, namespace, name).get("status") or {}
        line = describe(status)
        if line != last:
            print(f"{time.strftime('%H:%M:%S')}  {name}  {line}", flush=True)
            last = line
        if status.get("phase") in FINISHED:
            return 0 if status["phase"] == "Succeeded" else 1
        if time.monotonic() > deadline:
            print(f"{name}: still {status.get('phase') or 'Pending'} after {timeout:.0f}s", file=sys.stderr)
            return 3
        time.sleep(interval)


class _Literal(yaml.SafeDumper):
    """YAML with multi-line text as ``|`` blocks: a model's answer reads as written, not as one escaped line."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" not in value.strip():
        return dumper.represent_scalar("tag:yaml.org,2002:str", value)
    # A block cannot hold spaces at the end of a line (YAML would fall back to an escaped one-liner): drop them.
    text = "\n".join(line.rstrip() for line in value.strip().splitlines())
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")


_Literal.add_representer(str, _text)


def render_result(value: Any, output: str = "json") -> str:
    """A run's result as JSON (indented, for programs) or YAML (for people: text as text, long lines wrapped)."""
    if output == "yaml":
        return yaml.dump(value, Dumper=_Literal, allow_unicode=True, sort_keys=False, width=100).rstrip("\n")
    return json.dumps(value, indent=2, ensure_ascii=False)


def result(namespace: str, name: str, redis_url: str, output: str = "json") -> int:
    status = _get(run_state.kube_api(), namespace, name).get("status") or {}
    if status.get("resultRef"):
        value = with_redis(redis_url, lambda client: _load_ref(client, status["resultRef"]))
    elif "result" in status:
        value = status["result"]
    else:
        print(f"{name} has no result yet ({status.get('phase') or 'Pending'})", file=sys.stderr)
        return 1
    print(render_result(value, output))
    return 0


async def _load_ref(client: Any, ref: str) -> Any:
    from podium.dataplane.runs import load_result

    try:
        return await load_result(client, ref)
    except (LookupError, ValueError) as e:
        raise SystemExit(f"podium run result: {e}") from None


def tool_call_line(sender: str, payload: Any) -> str:
    """A ``tool.call`` event as one line: who called what with which arguments, in which step, and the answer."""
    from podium.dataplane.toolcalls import ToolCall

    call = ToolCall.from_wire(payload)
    arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)
    state = "ok" if call.ok else "failed"
    where = f"step {payload.get('step')}, attempt {payload.get('attempt')}, {call.ms:.0f} ms"
    result = json.dumps(call.result, ensure_ascii=False)
    return f"{sender} tool.call {call.server}/{call.tool}({arguments}) [{state}, {where}] -> {result}"


def conversation_lines(events: list[Any], entries: list[Any]) -> list[tuple[float, str]]:
    """The run as it happened: the engine's events (a tool call on one line of its own) and each step's exchange
    with its agent, by time."""
    from podium.dataplane.messages import MalformedMessage
    from podium.dataplane.toolcalls import TOOL_CALL_EVENT

    lines: list[tuple[float, str]] = []
    for event in events:
        payload = json.dumps(event.payload, ensure_ascii=False, default=str)
        line = f"{event.sender} {event.type} {payload}"
        if event.type == TOOL_CALL_EVENT:
            try:
                line = tool_call_line(event.sender, event.payload)
            except MalformedMessage:
                pass  # shown as it came
        lines.append((float(event.at), line))
    for entry in entries:
        result = entry.result or {}
        said = result.get("output") if entry.ok else (entry.error or result.get("error"))
        text = json.dumps(said, ensure_ascii=False, default=str)
        state = "ok" if entry.ok else ("failed" if entry.ok is False else "in flight")
        when = entry.finished_at or entry.started_at
        lines.append(
            (
                float(when),
                f"{entry.agent} {entry.kind or 'task'} {entry.step} [{state}, attempt {entry.attempt}] {text}",
            )
        )
    return sorted(lines, key=lambda line: line[0])


def agent_view(agent: str, run: str, events: list[Any], entries: list[Any], delivered: list[Any]) -> tuple[
    list[Any], list[Any]
]:  # fmt: skip
    """One agent's part of a run: what it published, what it was delivered (its direct stream, this run's) and
    the steps it worked on."""
    sent = [e for e in events if e.sender == agent]
    got = [e for e in delivered if getattr(e, "run", "") == run and e.type != "result"]
    for e in got:
        e.sender = f"{e.sender} -> {agent}"
    mine = [e for e in entries if e.agent == agent or agent in (e.history or [])]
    return sorted(sent + got, key=lambda e: e.at), mine


def history(namespace: str, name: str, redis_url: str, limit: int, agent: str | None = None) -> int:
    from podium.dataplane.bus import Bus
    from podium.engine.journal import Journal

    uid = run_state.get_run(run_state.kube_api(), namespace, name)["metadata"]["uid"]
    run = f"{namespace}/{name}"

    async def fetch(client: Any) -> tuple[list[Any], list[Any], list[Any]]:
        bus = Bus(client)
        events = await bus.history(orchestration=run, limit=limit if agent is None else 10_000)
        delivered = [] if agent is None else await bus.history(agent=(namespace, agent), limit=10_000)
        entries = await Journal(client, namespace, name, uid).entries()
        return list(events), entries, list(delivered)

    events, entries, delivered = with_redis(redis_url, fetch)
    if agent is not None:
        events, entries = agent_view(agent, run, events, entries, delivered)
    lines = conversation_lines(events, entries)
    if not lines:
        whose = f" for agent {agent}" if agent else ""
        print(f"{name}: no history{whose} (not started, or its keys were purged)", file=sys.stderr)
        return 1
    for at, line in lines[-limit:]:
        print(f"{time.strftime('%H:%M:%S', time.localtime(at))}  {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    import os

    parser = argparse.ArgumentParser(prog="podium run", description=__doc__)
    common: dict[tuple[str, ...], dict[str, Any]] = {
        ("-n", "--namespace"): {"default": "default", "help": "the Orchestration's namespace (default: default)"},
        ("--redis-url",): {
            "default": os.environ.get("PODIUM_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "help": "Podium's Redis, for results by reference, history, state and messages (env PODIUM_REDIS_URL)",
        },
    }
    for flags, how in common.items():
        parser.add_argument(*flags, **how)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "submit", help="create or update the Orchestrations in a file (its Agents and Teams are checked, not applied)"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--watch", action="store_true", help="then watch them to the end")
    p.add_argument("--timeout", type=float, default=600)
    p = sub.add_parser("watch", help="print progress until the run finishes")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=600)
    p = sub.add_parser("result", help="print the result (inline or by reference)")
    p.add_argument("name")
    p.add_argument("-o", "--output", choices=["json", "yaml"], default="json", help="yaml: text reads as text")
    p = sub.add_parser("history", help="print the conversation history of a run (or of one of its agents)")
    p.add_argument("name")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--agent", help="only this agent's part: its steps, the messages it sent and was delivered")
    run_state.add_parsers(sub)
    # Also after the command, as kubectl takes them (`podium run state NAME -n team`); given there, they win.
    for command in sub.choices.values():
        for flags, how in common.items():
            command.add_argument(*flags, default=argparse.SUPPRESS, help=how["help"])
    return parser


def main(argv: list[str]) -> int:
    from kubernetes.client.exceptions import ApiException

    args = build_parser().parse_args(argv)
    try:
        if args.command == "submit":
            names, skipped = submit(args.file, args.namespace)
            if skipped:
                print(
                    f"podium run: not applied: {', '.join(skipped)} (submit takes Orchestrations; "
                    f"apply the rest with kubectl apply -n {args.namespace} -f {args.file})",
                    file=sys.stderr,
                )
            for name in names:
                print(f"orchestration.{GROUP}/{name} submitted")
            if args.watch:
                return max((watch(args.namespace, n, args.timeout) for n in names), default=0)
            return 0
        if args.command == "watch":
            return watch(args.namespace, args.name, args.timeout)
        if args.command == "result":
            return result(args.namespace, args.name, args.redis_url, args.output)
        if args.command in run_state.COMMANDS:
            return run_state.main(args)
        return history(args.namespace, args.name, args.redis_url, args.limit, args.agent)
    except run_state.NotFound as e:
        print(e.code, file=sys.stderr)
        return 1
    except SpecError as e:
        print(f"podium run: {e.kind} {e.name!r} is invalid:", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except ApiException as e:
        if e.status == 404 and getattr(args, "name", None) is not None:
            print(f"podium run: orchestration {args.name!r} not found in namespace {args.namespace!r}", file=sys.stderr)
        else:
            print(f"podium run: the API server refused: {e.status} {e.reason}", file=sys.stderr)
        return 1
