"""`podium agent`: run one agent replica. Configured by environment variables (see --help)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading

from podium import telemetry
from podium.agent import logs, tracing
from podium.agent.config import ConfigError, RuntimeConfig, from_env
from podium.telemetry import TracingConfigError

ENV_HELP = """\
environment:
  PODIUM_AGENT_NAME      the Agent's name (required)
  PODIUM_NAMESPACE       its namespace (required)
  PODIUM_REDIS_URL       redis://host:port/db, redis+sentinel://h:p,h:p/<master> or redis+cluster://h:p,h:p
                         (required); PODIUM_REDIS_USERNAME / PODIUM_REDIS_PASSWORD if set
  PODIUM_CONFIG          YAML/JSON file of Agent spec fields (required; re-read when it changes)
  PODIUM_REPLICA         replica name (default: hostname)
  PODIUM_HTTP_HOST/PORT  probe and metrics server (default 0.0.0.0:8080)
  PODIUM_LOG_FORMAT      json | text (default json)
  PODIUM_GRACE_SECONDS   time in-flight tasks get after SIGTERM (default 25)
  PODIUM_LEASE_SECONDS   heartbeat lease (default 4)
  PODIUM_STALL_SECONDS   event loop stall that fails /healthz (default 10)
  PODIUM_LLM_API_KEY     API key for the llm backend
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, OTEL_*
                         traces (docs/observability.md); off unless set

signals: SIGTERM/SIGINT drain and exit 0; SIGUSR1 toggles maintenance (drain without exiting).
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="podium agent",
        description="Run one agent replica: consume its inbox, run tasks through the backend, report results.",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    try:
        config = from_env(os.environ)
    except ConfigError as exc:
        print(f"podium agent: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"configuration ok: {config.namespace}/{config.agent}, {config.spec.backend.type} backend")
        return 0
    try:
        tracing.configure(config)
    except TracingConfigError as exc:
        print(f"podium agent: tracing: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_format)
    try:
        return asyncio.run(_serve(config))
    finally:
        telemetry.shutdown()  # exports the spans still buffered


async def _serve(config: RuntimeConfig) -> int:
    from podium.agent.runtime import AgentRuntime

    runtime = AgentRuntime(config)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, runtime.request_stop)
    loop.add_signal_handler(signal.SIGINT, runtime.request_stop)
    loop.add_signal_handler(signal.SIGUSR1, runtime.toggle_maintenance)
    code = await runtime.run()
    stuck = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck:
        # Sync python-backend calls that timed out cannot be stopped, and interpreter exit would wait for
        # them until the kubelet's SIGKILL. Everything that matters (results, release, leave) is done.
        logging.getLogger("podium.agent").warning(f"exiting with {len(stuck)} abandoned worker thread(s)")
        telemetry.shutdown()
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code
