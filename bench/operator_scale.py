"""The operator at scale: Agents + Teams applied as one List, through `tests/cluster/test_operator_scale.py`.

    python -m bench.operator_scale [--sizes 300/50,1000/150,2000/300]

Each size runs the cluster test once and reads the figures it prints: `kubectl apply` time, settled time (every
Agent Ready with its children, every Team with its members) after the apply returned, and the operator's peak RSS.
Each size gets a fresh local cluster of its own (`.podium-bench-scale/`, its etcd data removed first): a cluster
kept from an earlier run still garbage-collects that run's thousands of objects, and its API server answers the
next run's apply at half speed or worse.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from podium_localcluster.launcher import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / ".podium-bench-scale"
LINE = re.compile(
    r"SCALE agents=(\d+) teams=(\d+) applied=([\d.]+)s settled=([\d.]+)s after_apply=([\d.]+)s peak_rss=(\d+)MiB"
)


def fresh_cluster() -> None:
    """No cluster running in CLUSTER and no data left from one: the test starts one and stops it when done."""
    LocalCluster(CLUSTER).down(log=lambda _msg: None)
    shutil.rmtree(CLUSTER / "etcd", ignore_errors=True)


def measure(agents: int, teams: int) -> dict[str, Any]:
    fresh_cluster()
    env = {
        **os.environ,
        "PODIUM_SCALE_AGENTS": str(agents),
        "PODIUM_SCALE_TEAMS": str(teams),
        "PODIUM_CLUSTER_DIR": str(CLUSTER),
    }
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/cluster/test_operator_scale.py", "-s", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    found = LINE.search(out.stdout)
    if found is None:
        raise RuntimeError(f"the scale test printed no figures (exit {out.returncode}): {out.stdout[-2000:]}")
    a, t, applied, settled, after, rss = found.groups()
    return {
        "agents": int(a),
        "teams": int(t),
        "apply_s": float(applied),
        "settled_s": float(settled),
        "settled_after_apply_s": float(after),
        "peak_rss_mib": int(rss),
        "passed": out.returncode == 0,
    }


def run(sizes: list[tuple[int, int]]) -> dict[str, Any]:
    rows = [measure(a, t) for a, t in sizes]
    for row in rows:
        print(f"# {row}", file=sys.stderr, flush=True)
    return {"rows": rows}


def table(report: dict[str, Any]) -> str:
    return "\n".join(
        f"{r['agents']} Agents + {r['teams']} Teams: apply {r['apply_s']} s, settled {r['settled_after_apply_s']} s "
        f"after the apply returned ({r['settled_s']} s from its start), peak RSS {r['peak_rss_mib']} MiB"
        + ("" if r["passed"] else " (NOT settled)")
        for r in report["rows"]
    )


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        agents, _, teams = part.partition("/")
        out.append((int(agents), int(teams)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="300/50", help="agents/teams, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(parse_sizes(args.sizes))
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
