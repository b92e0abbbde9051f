"""`make bench`: run the benchmarks of issue #17's table, write their JSON under bench/results/, print the table
with each figure next to its peer or floor from the same run, and write that table into docs/benchmarks.md.

    python -m bench.run [--quick] [--only bus,orchestration,operator_scale,sharding] [--no-doc]

bus and orchestration need only redis-server; operator_scale and sharding need the local cluster's binaries
(they start a cluster of their own: `.podium-test/`, `.podium-bench/`); llm_overhead needs the model server that
`make setup` builds. model_server (llama-server alone) runs only when named in --only. --quick: fewer tasks and
repetitions, the operator at 30/5, 40 runs for sharding; a few minutes in all.
Each JSON also records when it ran and the machine's load average, since the figures depend on both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bus, cpulimit, llm_overhead, model_server, operator_scale, orchestration, sharding
from bench import report as issue_table

RESULTS = Path(__file__).resolve().parent / "results"


def context(quick: bool) -> dict[str, Any]:
    return {
        "quick": quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def run_bus(quick: bool) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    return asyncio.run(bus.run(bus.QUICK if quick else bus.FULL, list(bus.DEFAULT))), bus.table


def run_orchestration(quick: bool) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    plan = orchestration.QUICK if quick else orchestration.FULL
    return asyncio.run(orchestration.run(plan)), orchestration.table


def run_model_server(quick: bool) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    return model_server.run(quick), model_server.table


def run_llm_overhead(quick: bool) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    return llm_overhead.run(llm_overhead.QUICK if quick else llm_overhead.FULL), llm_overhead.table


def run_operator_scale(quick: bool) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    return operator_scale.run([(30, 5)] if quick else [(300, 50)]), operator_scale.table


def run_sharding(quick: bool) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    # Each replica with a CPU limit of its own where cgroups allow: on 2 cores shared with the cluster, the agents
    # and Redis, unbounded replicas measure the machine, not the sharding (docs/benchmarks.md, "Runs across replicas").
    cpu = sharding.REPLICA_CPU_MILLICORES if cpulimit.available() else 0
    return sharding.run(runs=40 if quick else 200, rounds=1 if quick else 2, cpu_limit_m=cpu), sharding.table


RUNNERS = {
    "bus": run_bus,
    "orchestration": run_orchestration,
    "operator_scale": run_operator_scale,
    "sharding": run_sharding,
    "llm_overhead": run_llm_overhead,
    "model_server": run_model_server,
}
BENCHMARKS = tuple(RUNNERS)
DEFAULT = ("bus", "orchestration", "operator_scale", "sharding", "llm_overhead")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few minutes in all")
    parser.add_argument("--only", default=",".join(DEFAULT), help=f"comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON files")
    parser.add_argument("--no-doc", action="store_true", help="do not write the table into docs/benchmarks.md")
    parser.add_argument("--doc", type=Path, default=issue_table.DOC, help="the Markdown file the table goes into")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    only = [b for b in args.only.split(",") if b]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    started_all, load_start = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    reports: dict[str, dict[str, Any]] = {}
    for name in only:
        meta = context(args.quick)
        started = time.perf_counter()
        report, table = RUNNERS[name](args.quick)
        meta["seconds"] = round(time.perf_counter() - started, 1)
        meta["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        report["run"] = meta
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"== {name} ({meta['seconds']} s, load {meta['load_average_at_start']} -> {meta['load_average_at_end']})")
        print(table(report))
        print(f"wrote {path}", flush=True)
        reports[name] = report
    summary = issue_table.rows(reports)
    print("== issue #17's table")
    print(issue_table.text(summary))
    if not args.no_doc and summary:
        command = (
            "make bench"
            if argv is None and len(sys.argv) <= 1
            else "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
        )
        meta = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "load_start": load_start[0],
            "load_end": round(os.getloadavg()[0], 2),
            "seconds": time.perf_counter() - started_all,
        }
        issue_table.write(summary, command, meta, doc=args.doc)
        print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
