"""`make bench`: run every benchmark and write its JSON under bench/results/.

    python -m bench.run [--quick] [--only bus,orchestration]

--quick keeps the whole run to about 3 minutes (fewer tasks, shorter latency runs, fewer repetitions).
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

from bench import bus, model_server, orchestration

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


RUNNERS = {"bus": run_bus, "orchestration": run_orchestration, "model_server": run_model_server}
BENCHMARKS = tuple(RUNNERS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about 3 minutes in all")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON files")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    only = [b for b in args.only.split(",") if b]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.out.mkdir(parents=True, exist_ok=True)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
