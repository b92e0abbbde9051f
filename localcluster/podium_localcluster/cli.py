"""`podium-cluster up|down|status|env|node`: the local Kubernetes cluster from the command line.

`node` runs the node agent (the cluster's `up` starts it; it is a verb of its own so the node runs from the same
installation as the cluster).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from podium_localcluster.launcher import ClusterError, LocalCluster


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podium-cluster", description="Start/stop the local Kubernetes cluster.")
    p.add_argument("--dir", type=Path, default=Path(".podium"), help="cluster directory (default: .podium)")
    # --dir is accepted before or after the subcommand; SUPPRESS keeps the subcommand from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help="cluster directory (default: .podium)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", parents=[common], help="start the cluster (builds the binaries the first time); no-op if running"
    )
    node = up.add_mutually_exclusive_group()
    node.add_argument("--no-node", dest="node", action="store_false", default=None, help="control plane only")
    node.add_argument("--node", dest="node", action="store_true", help="require the node agent")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness (default 180)")
    sub.add_parser("down", parents=[common], help="stop every process of the cluster (data is kept)")
    status = sub.add_parser("status", parents=[common], help="show components, pids and readiness")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("env", parents=[common], help="print shell exports: eval $(podium-cluster env)")
    # Listed for --help only: main() hands `node` and everything after it to the node agent's own parser.
    sub.add_parser("node", add_help=False, help="run the node agent (pods as local processes); `up` starts it")
    return p


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        from podium_localcluster.node import main as node_main

        return node_main(argv[1:])
    args = parser().parse_args(argv)
    cluster = LocalCluster(args.dir)
    try:
        if args.command == "up":
            started = time.monotonic()
            state = cluster.up(with_node=args.node, timeout=args.timeout, log=_log)
            _log(f"cluster up at {state.api_url} in {time.monotonic() - started:.1f}s")
            _log(f"  eval $(podium-cluster env --dir {args.dir})  # then: kubectl get nodes")
            return 0
        if args.command == "down":
            if not cluster.down(log=_log):
                _log("cluster was not running")
            return 0
        if args.command == "status":
            info = cluster.status()
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                print(f"{info['state']}  {info.get('api_url', '')}  dir={info['dir']}")
                for name, comp in info.get("components", {}).items():
                    print(f"  {name:<24} pid {comp['pid']:<8} {'alive' if comp['alive'] else 'DEAD':<6} {comp['log']}")
                if info.get("node_ready") is not None:
                    print(f"  node {info['node']}: {'Ready' if info.get('node_ready') else 'not Ready'}")
            return 0 if info["state"] == "running" else 1
        if args.command == "env":
            print("; ".join(cluster.env_lines()))
            return 0
    except ClusterError as exc:
        _log(f"podium-cluster {args.command}: {exc}")
        return 1
    except RuntimeError as exc:  # build failures
        _log(f"podium-cluster {args.command}: {exc}")
        return 1
    return 2
