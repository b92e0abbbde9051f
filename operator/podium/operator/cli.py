"""`podium operator`: run the Kubernetes operator (kopf) that reconciles Agents and Teams.

Runs the same as a pod (in-cluster service account) and as a local process (KUBECONFIG or ~/.kube/config).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import random
import sys

from podium import telemetry
from podium.operator.settings import DEFAULT_REDIS_URL, Settings
from podium.telemetry import TracingConfigError

ENVIRONMENT = f"""environment (flags win):
  PODIUM_REDIS_URL                  Redis the operator uses (default {DEFAULT_REDIS_URL}); also
                                    redis+sentinel://h:p,h:p/<master> and redis+cluster://h:p,h:p (docs/data-plane.md)
  PODIUM_REDIS_PASSWORD             password of the Redis default user (operator only; agents get ACL users)
  PODIUM_AGENT_REDIS_URL            Redis URL agent pods dial (default: PODIUM_REDIS_URL without credentials)
  PODIUM_AGENT_IMAGE                image of agent pods unless an Agent's spec.template.image overrides it
  PODIUM_LOG_FORMAT                 json (default) or text
  PODIUM_HEARTBEAT_LEASE_SECONDS    a replica silent for longer than this is restarted (default 10)
  PODIUM_HEALTH_INTERVAL_SECONDS    how often each Agent's health is checked (default 5)
  PODIUM_RESYNC_SECONDS             how often children are re-checked for drift (default 120)
  PODIUM_STARTUP_GRACE_SECONDS      time a new replica has before its first heartbeat counts (default 30)
  PODIUM_MAX_PAYLOAD_BYTES          largest task or result Redis stores (default 1048576)
  PODIUM_RUN_LEASE_SECONDS          an operator replica silent this long has its runs taken over (default 6)
  PODIUM_REPLICA                    this operator replica's name among its peers (default: the host name)
  KUBECONFIG                        kubeconfig outside a cluster; in a pod the service account is used
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, OTEL_*
                                    traces of runs (docs/observability.md), off unless set; agent pods get them too
  PODIUM_TRACING_AGENTS             false: agent pods do not get the OTEL_* variables
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="podium operator",
        description="Reconcile Agents into Deployments, Services, ConfigMaps, Secrets and Redis users; "
        "watch their health; keep Agent and Team status current.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--standalone", action="store_true", help="no peering: the only operator replica")
    mode.add_argument("--peering", metavar="NAME", help="kopf peering name: standby replicas take over")
    p.add_argument(
        "--priority",
        type=int,
        help="peering priority: the highest live replica works, the others stand by (default: random per process; "
        "kopf pauses every replica when two share one)",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (default)")
    scope.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    p.add_argument("--kubeconfig", help="path to a kubeconfig (default: in-cluster, then KUBECONFIG)")
    p.add_argument("--redis-url", help=f"overrides PODIUM_REDIS_URL (default {DEFAULT_REDIS_URL})")
    p.add_argument("--agent-image", help="overrides PODIUM_AGENT_IMAGE")
    p.add_argument("--metrics-port", type=int, default=9090, help="Prometheus metrics port; 0 disables (9090)")
    p.add_argument("--metrics-host", default="0.0.0.0", help="address the metrics server binds (0.0.0.0)")
    p.add_argument("--liveness", metavar="URL", help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    p.add_argument("--log-format", choices=["json", "text"], help="overrides PODIUM_LOG_FORMAT")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p


def configure(args: argparse.Namespace) -> Settings:
    conf = Settings.from_env()
    if args.redis_url:
        conf.redis_url = args.redis_url
    if args.agent_image:
        conf.agent_image = args.agent_image
    if args.log_format:
        conf.log_format = args.log_format
    if conf.log_format not in ("json", "text"):
        raise SystemExit(f"podium operator: log format must be json or text, not {conf.log_format!r}")
    if conf.heartbeat_lease_seconds < 1 or conf.health_interval_seconds < 1 or conf.run_lease_seconds < 1:
        raise SystemExit("podium operator: leases and the health interval must be at least 1 second")
    conf.check()
    conf.namespaces = list(args.namespace)
    return conf


def preflight() -> str | None:
    """Fail at once, with the fix, rather than have kopf retry a start-up that cannot succeed."""
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as e:
            return f"no Kubernetes credentials: not in a pod, and no usable kubeconfig ({e}); set KUBECONFIG"
    return None


def quiet_timers(record: logging.LogRecord) -> bool:
    """Drop kopf's "Timer 'health' succeeded." lines: one per Agent per health interval says nothing (a failing
    timer still logs), and at 2,000 Agents it was hundreds of lines a second of the operator's CPU."""
    return not (
        record.levelno == logging.INFO
        and str(record.msg).startswith("Timer '")
        and str(record.msg).endswith(" succeeded.")
    )


M_ARENA_MAX = -8  # glibc's mallopt parameter


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc keep at most ``arenas`` malloc arenas (unless MALLOC_ARENA_MAX says otherwise). By default every
    thread that allocates gets one, up to 8 per core; the Kubernetes API threads then each held freed memory of
    their own: 241 MiB peak at 1,000 Agents against 210 MiB with two (docs/benchmarks.md). Not glibc: nothing."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    conf = configure(args)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    try:
        telemetry.configure("podium-operator")
    except TracingConfigError as e:
        print(f"podium operator: tracing: {e}", file=sys.stderr)
        return 2
    problem = preflight()
    if problem:
        print(f"podium operator: {problem}", file=sys.stderr)
        return 2
    import kopf

    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if conf.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="k8s" if conf.log_format == "json" else None,
    )
    cap_malloc_arenas()  # before any thread starts
    logging.getLogger("kopf.objects").addFilter(quiet_timers)
    from podium.operator import handlers

    registry = handlers.register(kopf.OperatorRegistry(), conf)

    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_host)
    priority = args.priority if args.priority is not None else (random.randint(1, 2**31 - 1) if args.peering else 0)
    try:
        kopf.run(
            registry=registry,
            memo=kopf.Memo(settings=conf),
            standalone=args.standalone or None,
            priority=priority,
            peering_name=args.peering,
            clusterwide=not conf.namespaces,
            namespaces=conf.namespaces,
            liveness_endpoint=args.liveness,
        )
    except KeyboardInterrupt:
        return 130
    finally:
        telemetry.shutdown()  # exports the spans still buffered
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
