"""`podium ui`: serve the read-only run viewer for one or more namespaces.

    podium ui [--namespace NS ...| --all-namespaces] [--port 8080] [--address 127.0.0.1]

It reads Orchestrations and their Events with your Kubernetes credentials (in a pod: its service account) and
each run's journal, events and shared state from Redis. Give it a read-only Redis user (docs/viewer.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from podium.viewer.source import Kube, Scope, Source, Unavailable, check_namespace

ENVIRONMENT = """environment (flags win):
  PODIUM_REDIS_URL        Redis holding the runs' journals and events (unset: the page shows status only)
  PODIUM_REDIS_USERNAME   Redis ACL user (a read-only one: docs/viewer.md)
  PODIUM_REDIS_PASSWORD   its password
  KUBECONFIG              kubeconfig outside a cluster; in a pod the service account is used
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="podium ui",
        description="Serve a read-only web page of a namespace's Orchestrations: runs, timelines, each strategy's "
        "picture, cost and history, live while they run.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], help="serve this namespace (repeatable; "
                       "default: the kubeconfig context's namespace, else default)")  # fmt: skip
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="serve every namespace with runs")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    p.add_argument("--kubeconfig", help="path to a kubeconfig (default: in-cluster, then KUBECONFIG)")
    p.add_argument("--redis-url", default=os.environ.get("PODIUM_REDIS_URL"), help="overrides PODIUM_REDIS_URL")
    p.add_argument("--log-format", choices=["json", "text"], default="text")
    return p


def context_namespace(kubeconfig: str | None) -> str:
    """The namespace of the current kubeconfig context (what kubectl uses), else ``default``."""
    try:
        from kubernetes import config

        path = kubeconfig or os.environ.get("KUBECONFIG") or None  # as it is now, not at the client's import
        _, current = config.list_kube_config_contexts(config_file=path)
        return str((current or {}).get("context", {}).get("namespace") or "default")
    except Exception:  # no kubeconfig (in a pod): the chart passes --namespace
        return "default"


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from podium.dataplane.connection import connect, redact
    from podium.viewer.server import make_app

    try:
        kube = Kube.from_config(args.kubeconfig)
    except Unavailable as exc:
        print(f"podium ui: {exc}", file=sys.stderr)
        return 2
    namespaces = [check_namespace(n) for n in args.namespace] or (
        [] if args.all_namespaces else [context_namespace(args.kubeconfig)]
    )
    redis = None
    if args.redis_url:
        redis = connect(
            args.redis_url,
            username=os.environ.get("PODIUM_REDIS_USERNAME") or None,
            password=os.environ.get("PODIUM_REDIS_PASSWORD") or None,
            socket_connect_timeout=5,
            socket_timeout=10,
        )
    source = Source(kube, redis, Scope(tuple(namespaces)), redact(args.redis_url or ""))
    runner = web.AppRunner(make_app(source), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.address, args.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"podium ui: cannot listen on {args.address}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    where = ", ".join(namespaces) if namespaces else "every namespace"
    host = f"[{args.address}]" if ":" in args.address else args.address
    print(f"Podium viewer on http://{host}:{args.port}/ ({where}); Ctrl-C stops it", flush=True)
    if redis is None:
        print("podium ui: no Redis (--redis-url / PODIUM_REDIS_URL): pages show each run's status only", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # a pod's stop: finish cleanly
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if redis is not None:
            await redis.aclose()
        kube.close()
    return 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"podium ui: --port must be 1-65535, not {args.port}", file=sys.stderr)
        return 2
    from podium.viewer.source import NotFound

    try:
        for name in args.namespace:
            check_namespace(name)
    except NotFound as exc:
        print(f"podium ui: --namespace {exc}", file=sys.stderr)
        return 2
    from podium.agent.logs import setup

    setup(args.log_format)
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 0
