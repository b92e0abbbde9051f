"""Runs across operator replicas: 200 concurrent 5-stage pipelines of no-op agents, driven by 1 and by 2 replicas.

Needs the local cluster with its node (agent pods run as local processes); starts one in `.podium-bench/` (or
reuses one running there, or PODIUM_BENCH_CLUSTER_DIR) and its own redis-server. Per round: a fresh namespace,
a no-op python Agent (2 replicas, concurrency 64) Ready, every Orchestration applied while no operator runs,
then N `podium operator --peering` replicas started at once; the time from their start until every run is
Succeeded gives runs/s. Rounds alternate 1, 2, 1, 2 (medians), so a load spike hits both. Peak RSS (VmHWM) of
each replica, and that of an idle operator, give the RSS per 100 running runs.

`--cpu-limit M` (millicores) puts each replica in a cgroup of its own with that CPU quota, as
`resources.limits.cpu` does for a pod: on a machine whose cores are all taken by the cluster, the agents and
Redis, a second unbounded replica can only trade CPU with them, so 1 vs 2 replicas measures the machine; with a
limit, each replica brings its own share, as a replica on its own node or with its own limit does in a cluster.
Each round also reports the replicas' CPU seconds, how long they were throttled, and how busy the machine was.

    python -m bench.sharding [--runs 200] [--stages 5] [--rounds 2] [--cpu-limit 400]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.cpulimit import CpuLimit, cpu_limit, cpu_seconds, machine_busy
from podium_localcluster.launcher import LocalCluster, child_env
from podium_localcluster.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "_peers"
PODIUM = str(Path(sys.executable).parent / "podium")
REPLICA_CPU_MILLICORES = 300  # `make bench`'s limit per replica: two of them and what they drive fit in 2 cores
CRDS = [*sorted((ROOT / "crds").glob("*.yaml")), ROOT / "charts" / "podium" / "crds" / "kopf-peering.yaml"]


class Cluster:
    def __init__(self, root: Path) -> None:
        self.local = LocalCluster(root)
        self.state = self.local.up(with_node=True, timeout=300, log=lambda _m: None)
        self.env = {**child_env(self.state), "KUBECONFIG": str(self.local.paths.kubeconfig)}
        self.kubectl_bin = str(self.local.paths.bin / "kubectl")

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_bin, f"--kubeconfig={self.local.paths.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )

    def must(self, *args: str, input: str | None = None) -> str:
        out = self.kubectl(*args, input=input)
        if out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {out.stderr.strip()}")
        return out.stdout


def wait(what: str, check: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")


def peak_rss_mib(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def operators(
    cluster: Cluster, ns: str, redis_url: str, count: int, log_dir: Path, cpu: int = 0
) -> Iterator[list[tuple[subprocess.Popen[bytes], CpuLimit | None]]]:
    procs: list[tuple[subprocess.Popen[bytes], CpuLimit | None]] = []
    env = {
        **cluster.env,
        "PODIUM_REDIS_URL": redis_url,
        "PODIUM_AGENT_IMAGE": "podium-agent:dev",
        "PODIUM_HEALTH_INTERVAL_SECONDS": "5",
    }
    with ExitStack() as stack:
        try:
            for i in range(count):
                args = [PODIUM, "operator", "--peering=podium", f"--priority={100 + i}", f"--namespace={ns}"]
                args += [f"--metrics-port={free_port()}", "--metrics-host=127.0.0.1", "--log-format=text"]
                limit = stack.enter_context(cpu_limit(cpu)) if cpu else None
                with (log_dir / f"{ns}-op{i}.log").open("ab") as out:
                    p = subprocess.Popen(
                        args, env={**env, "PODIUM_REPLICA": f"op{i}"}, stdout=out, stderr=subprocess.STDOUT
                    )
                procs.append((p, limit))
                if limit:
                    limit.add(p.pid)  # before it starts its threads and event loop: they follow it
            yield procs
        finally:
            for p, _ in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p, _ in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def noop_agent() -> dict[str, Any]:
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "noop"},
        "spec": {
            "role": "worker",
            "capabilities": [{"name": "noop"}],
            "backend": {"python": {"entrypoint": "noop_agent:noop"}},
            "replicas": 2,
            "concurrency": 64,
            "template": {"env": [{"name": "PYTHONPATH", "value": str(PEERS)}]},
        },
    }


def pipelines(count: int, stages: int) -> str:
    items = [
        {
            "apiVersion": "podium.dev/v1alpha1",
            "kind": "Orchestration",
            "metadata": {"name": f"run-{i:03d}"},
            "spec": {
                "strategy": "pipeline",
                "input": {"n": i},
                "pipeline": {"stages": [{"name": f"s{j}", "agent": "noop"} for j in range(stages)]},
            },
        }
        for i in range(count)
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def agent_ready(cluster: Cluster, ns: str) -> bool:
    out = cluster.kubectl("get", "agent", "noop", "-n", ns, "-o", "jsonpath={.status.ready}")
    return out.returncode == 0 and out.stdout == "2/2"


def phases(cluster: Cluster, ns: str) -> list[str]:
    out = cluster.kubectl("get", "orchestrations", "-n", ns, "-o", "jsonpath={.items[*].status.phase}")
    return out.stdout.split() if out.returncode == 0 else []


def one_round(
    cluster: Cluster, redis_url: str, replicas: int, runs: int, stages: int, log_dir: Path, cpu: int = 0
) -> dict[str, Any]:
    ns = f"bench-shards-{uuid.uuid4().hex[:6]}"
    cluster.must("create", "namespace", ns)
    try:
        cluster.must("apply", "-n", ns, "-f", "-", input=json.dumps(noop_agent()))
        peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "podium"}}
        cluster.must("apply", "-n", ns, "-f", "-", input=json.dumps(peering))
        # An operator makes the agent's pods, then stops: the runs must wait for the replicas under test.
        with operators(cluster, ns, redis_url, 1, log_dir):
            wait("the no-op agent Ready 2/2", lambda: agent_ready(cluster, ns), 300)
        cluster.must("apply", "-n", ns, "-f", "-", input=pipelines(runs, stages))
        with operators(cluster, ns, redis_url, replicas, log_dir, cpu) as procs:
            started, (busy0, total0) = time.monotonic(), machine_busy()
            wait(f"{runs} runs Succeeded", lambda: phases(cluster, ns).count("Succeeded") == runs, 900, every=0.5)
            seconds = time.monotonic() - started
            busy1, total1 = machine_busy()
            rss = [round(peak_rss_mib(p.pid), 1) for p, _ in procs]
            cpu_s = [round(cpu_seconds(p.pid), 1) for p, _ in procs]
            throttled = [round(limit.throttled_seconds(), 1) for _, limit in procs if limit]
            failed = [p for p in phases(cluster, ns) if p != "Succeeded"]
            # Deleted while the operators run, so their finalizers (Redis users, run keys) are honoured, and
            # before the namespace: deleting it would take the KopfPeering with it, which pauses kopf.
            cluster.kubectl("delete", "orchestrations,agents", "--all", "-n", ns, "--timeout=300s")
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
        return {
            "replicas": replicas,
            "seconds": round(seconds, 2),
            "runs_per_s": round(runs / seconds, 2),
            "tasks_per_s": round(runs * stages / seconds, 1),
            "peak_rss_mib": rss,
            "cpu_seconds": cpu_s,
            "throttled_seconds": throttled,
            "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1e-9), 2),
            "not_succeeded": len(failed),
        }
    except BaseException:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
        raise


def idle_rss(cluster: Cluster, redis_url: str, log_dir: Path) -> float:
    ns = f"bench-idle-{uuid.uuid4().hex[:6]}"
    cluster.must("create", "namespace", ns)
    try:
        with operators(cluster, ns, redis_url, 1, log_dir) as procs:
            time.sleep(15)
            return round(peak_rss_mib(procs[0][0].pid), 1)
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def run(runs: int = 200, stages: int = 5, rounds: int = 2, cpu_limit_m: int = 0) -> dict[str, Any]:
    root = Path(os.environ.get("PODIUM_BENCH_CLUSTER_DIR", ROOT / ".podium-bench"))
    cluster = Cluster(root)
    cluster.must("apply", "--server-side", "--force-conflicts", *(f"-f={p}" for p in CRDS))
    log_dir = root / "bench-logs"
    log_dir.mkdir(exist_ok=True)
    rows: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with RedisServer() as server:
        idle = idle_rss(cluster, server.url, log_dir)
        for _ in range(rounds):
            for replicas in (1, 2):
                row = one_round(cluster, server.url, replicas, runs, stages, log_dir, cpu_limit_m)
                print(f"# {row}", file=sys.stderr, flush=True)
                rows[replicas].append(row)
    one = round(statistics.median(r["runs_per_s"] for r in rows[1]), 2)
    two = round(statistics.median(r["runs_per_s"] for r in rows[2]), 2)
    single_peak = statistics.median(r["peak_rss_mib"][0] for r in rows[1])
    return {
        "runs": runs,
        "stages": stages,
        "cpu_limit_millicores": cpu_limit_m,
        "rounds": rows,
        "one_replica_runs_per_s": one,
        "two_replicas_runs_per_s": two,
        "speedup": round(two / one, 2),
        "idle_rss_mib": idle,
        "rss_mib_per_100_runs": round((single_peak - idle) * 100 / runs, 1),
        "cluster_dir": str(root),
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['runs']} concurrent {report['stages']}-stage pipelines of no-op agents: 1 replica "
        f"{report['one_replica_runs_per_s']} runs/s, 2 replicas {report['two_replicas_runs_per_s']} runs/s "
        f"= {report['speedup']}x; operator RSS {report['rss_mib_per_100_runs']} MiB per 100 running runs "
        f"(idle {report['idle_rss_mib']} MiB)"
        + (f"; each replica limited to {report['cpu_limit_millicores']}m CPU" if report["cpu_limit_millicores"] else "")
    ]
    for n, rows in report["rounds"].items():
        for r in rows:
            lines.append(
                f"  {n} replica(s): {r['seconds']} s, peak RSS {r['peak_rss_mib']} MiB, CPU {r['cpu_seconds']} s"
                f" (throttled {r['throttled_seconds']} s), machine {r['machine_busy']:.0%} busy"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--stages", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpu-limit", type=int, default=0, metavar="MILLICORES", help="CPU quota per replica")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.runs, args.stages, args.rounds, args.cpu_limit)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
