"""`podium-cluster node`: command line of the node agent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from pathlib import Path

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from podium_localcluster.node.agent import NodeAgent
from podium_localcluster.node.kubeapi import KubeAPI
from podium_localcluster.node.logserver import can_serve, find_log, serve


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="podium-cluster node", description="Run the pods bound to this node as local processes."
    )
    p.add_argument("--kubeconfig", required=False, help="kubeconfig of the node identity (system:node:<name>)")
    p.add_argument("--name", default="podium-node", help="Node name (default podium-node)")
    p.add_argument("--state-dir", default=".podium/node", help="pod directories, logs, certificates")
    p.add_argument("--service-cidr", default="127.96.0.0/16", help="the API server's service CIDR (loopback)")
    p.add_argument("--pod-cidr", default="127.64.0.0/16", help="loopback range for pod addresses")
    p.add_argument("--api-url", default=None, help="API server URL given to pods (default: from the kubeconfig)")
    p.add_argument("--kubelet-port", type=int, default=0, help="HTTPS port of the log endpoint (0: any free)")
    p.add_argument("--tls-cert-file", default=None, help="serving cert of the log endpoint (default: see docs)")
    p.add_argument("--tls-private-key-file", default=None)
    p.add_argument("--client-ca-file", default=None, help="CA the API server's kubelet client cert must chain to")
    p.add_argument("--restart-backoff", type=float, default=10.0, help="base restart back-off in seconds")
    p.add_argument("--cpu", default="16", help="nominal cpu capacity (the node does not enforce limits)")
    p.add_argument("--memory", default="32Gi", help="nominal memory capacity")
    p.add_argument("--max-pods", default="250")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("command", nargs="*", help="`logs <ns>/<pod> [container]` prints a container's log and exits")
    return p


def _logs(state_dir: Path, args: list[str]) -> int:
    if not args or "/" not in args[0]:
        print("usage: podium-cluster node logs <namespace>/<pod> [container]", file=sys.stderr)
        return 2
    ns, pod = args[0].split("/", 1)
    container = args[1] if len(args) > 1 else None
    if container is None:
        dirs = sorted((state_dir / "pods").glob(f"{ns}_{pod}_*"))
        logs = sorted(dirs[-1].glob("*.log")) if dirs else []
        if len(logs) != 1:
            names = ", ".join(p.stem for p in logs) or "none"
            print(f"podium-cluster node logs: name a container ({names})", file=sys.stderr)
            return 2
        container = logs[0].stem
    path = find_log(state_dir, ns, pod, container)
    if path is None:
        print(f"podium-cluster node logs: no log for {ns}/{pod} {container} under {state_dir}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(path.read_bytes())
    return 0


async def _run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cert, key, ca = args.tls_cert_file, args.tls_private_key_file, args.client_ca_file
    if not cert:
        # The local cluster signs the node's client cert for serving too (serverAuth, 127.0.0.1): the API server
        # verifies the node with --kubelet-certificate-authority, so a self-signed cert would be refused.
        cfg = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=args.kubeconfig, client_configuration=cfg)
        if cfg.cert_file and can_serve(cfg.cert_file):
            cert, key = cfg.cert_file, cfg.key_file
            ca = ca or cfg.ssl_ca_cert
        else:
            logging.getLogger("podium.node").warning(
                "no serving certificate signed by the cluster CA: `kubectl logs` needs --tls-cert-file"
            )
    runner, port = await serve(state_dir, args.name, "127.0.0.1", args.kubelet_port, ca, cert, key)
    try:
        async with KubeAPI(args.kubeconfig) as api:
            agent = NodeAgent(
                api,
                args.name,
                state_dir,
                api_url=args.api_url,
                pod_cidr=args.pod_cidr,
                backoff_base=args.restart_backoff,
                capacity={
                    "cpu": args.cpu,
                    "memory": args.memory,
                    "pods": str(args.max_pods),
                    "ephemeral-storage": "100Gi",
                },
                kubelet_port=port,
            )
            await agent.run(stop)
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command:
        if args.command[0] == "logs":
            return _logs(Path(args.state_dir), args.command[1:])
        print(f"podium-cluster node: unknown command {args.command[0]!r} (only `logs`)", file=sys.stderr)
        return 2
    if not args.kubeconfig:
        print("podium-cluster node: --kubeconfig is required", file=sys.stderr)
        return 2
    for flag, value in (("--service-cidr", args.service_cidr), ("--pod-cidr", args.pod_cidr)):
        try:
            net = ipaddress.ip_network(value)
        except ValueError as e:
            print(f"podium-cluster node: {flag}: {e}", file=sys.stderr)
            return 2
        if not net.subnet_of(ipaddress.ip_network("127.0.0.0/8")):  # type: ignore[arg-type]
            print(
                f"podium-cluster node: {flag} {value} must be inside 127.0.0.0/8 (pods and services live on loopback)",
                file=sys.stderr,
            )
            return 2
    args.state_dir = Path(args.state_dir).resolve()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(_run(args))
