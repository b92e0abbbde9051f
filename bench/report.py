"""The table of issue #17 from one `make bench` run: each figure next to its peer or floor measured in that run,
printed and written into docs/benchmarks.md between two markers (the rest of that file is prose kept by hand)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin (written by `make bench`) -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Row:
    what: str
    measured: str
    against: str  # the peer or floor measured in the same run, and the ratio
    target: str
    met: bool | None  # None: no verdict (not measured, or a figure without a target)


def _bus(r: dict[str, Any]) -> list[Row]:
    systems, ratios, paired = r["systems"], r.get("ratios", {}), r.get("paired") or {}
    podium = systems.get("podium", {})
    if "tasks_per_s" not in podium:
        return [Row("bus round trip, no-op tasks, 2 workers", f"error: {podium.get('error')}", "", "", None)]
    peers = []
    for name, label in (("raw", "raw redis-py"), ("dramatiq", "Dramatiq"), ("celery", "Celery")):
        if "tasks_per_s" in systems.get(name, {}):
            peers.append(f"{label} {systems[name]['tasks_per_s']:,.0f} ({ratios.get(f'podium_vs_{name}_throughput')}x)")
    raw_ratio = paired.get("median", ratios.get("podium_vs_raw_throughput") or 0)
    measured = f"{podium['tasks_per_s']:,.0f} tasks/s"
    if paired:
        measured += (
            f"; podium/raw median of {paired['rounds']} interleaved rounds {paired['median']}x "
            f"(range {paired['min']}-{paired['max']}), by CPU per task {paired['cpu_median']}x"
        )
    met = (
        raw_ratio >= 1.0
        and (ratios.get("podium_vs_dramatiq_throughput") or 0) >= 5
        and (ratios.get("podium_vs_celery_throughput") or 0) >= 20
    )
    return [
        Row(
            "bus round trip, no-op tasks, 2 workers",
            measured,
            "; ".join(peers),
            "≥ 1.0x raw, ≥ 5x Dramatiq, ≥ 20x Celery",
            met,
        )
    ]


def _orchestration(r: dict[str, Any]) -> list[Row]:
    p, c = r["pipeline"], r["central_command"]
    ratio = p["engine_ms_per_step"] / p["bus_ms_per_step"]
    rows = [
        Row(
            f"pipeline of {p['stages']} no-op stages, engine vs the same steps sent directly through the bus",
            f"{p['engine_ms_per_step']:.2f} ms/step, {p['engine_round_trips_per_step']} round trips/step",
            f"bus directly {p['bus_ms_per_step']:.2f} ms/step, {p['bus_round_trips_per_step']} round trips/step "
            f"({ratio:.2f}x)",
            "≤ 1.3x direct, ≤ 3 round trips/step",
            ratio <= 1.3 and p["engine_round_trips_per_step"] <= 3,
        ),
        Row(
            f"centralCommand, {c['tasks']} parallel tasks",
            f"{c['tasks_per_s']:,.0f} tasks/s, {c['round_trips_per_task']} round trips/task",
            f"the same tasks at once through the bus {c['bus_tasks_per_s']:,.0f} tasks/s "
            f"({c['tasks_per_s'] / c['bus_tasks_per_s']:.2f}x)",
            "≥ 1,972 tasks/s (4x 493), ≤ 2 round trips/task",
            c["tasks_per_s"] >= 1972 and c["round_trips_per_task"] <= 2,
        ),
    ]
    swarm = r.get("swarm")
    if swarm:
        worst = max(w["growth_vs_linear"] for w in swarm["rows"])
        rows.append(
            Row(
                f"swarm of N explorer agents, {swarm['generations']} generations",
                ", ".join(f"{w['explorers']}: {w['ms_per_generation']:.0f} ms/generation" for w in swarm["rows"]),
                f"growth of time per generation over growth of N: {worst} at most (1 = linear)",
                "≤ linear (1.1 allowed: the runs' noise)",
                worst <= 1.1,
            )
        )
    return rows


def _operator_scale(r: dict[str, Any]) -> list[Row]:
    out = []
    for s in r["rows"]:
        target = "settled ≤ 60 s after the apply, RSS ≤ 250 MiB" if s["agents"] >= 1000 else ""
        out.append(
            Row(
                f"operator, {s['agents']} Agents + {s['teams']} Teams as one List",
                f"apply {s['apply_s']} s, settled {s['settled_after_apply_s']} s after it returned, RSS "
                f"{s['peak_rss_mib']} MiB",
                "",
                target,
                (s["settled_after_apply_s"] <= 60 and s["peak_rss_mib"] <= 250 and s["passed"]) if target else None,
            )
        )
    return out


def _sharding(r: dict[str, Any]) -> list[Row]:
    limit = r.get("cpu_limit_millicores")
    return [
        Row(
            f"{r['runs']} concurrent {r['stages']}-stage pipelines of no-op agents"
            + (f", each operator replica limited to {limit}m CPU" if limit else ", operator replicas unbounded"),
            f"2 replicas {r['two_replicas_runs_per_s']} runs/s; RSS {r['rss_mib_per_100_runs']} MiB per 100 "
            "running runs",
            f"1 replica {r['one_replica_runs_per_s']} runs/s ({r['speedup']}x)",
            "2 replicas ≥ 1.6x one",
            r["speedup"] >= 1.6,
        )
    ]


BUILDERS = {"bus": _bus, "orchestration": _orchestration, "operator_scale": _operator_scale, "sharding": _sharding}


def rows(reports: dict[str, dict[str, Any]]) -> list[Row]:
    out: list[Row] = []
    for name, build in BUILDERS.items():
        if name in reports:
            try:
                out += build(reports[name])
            except (KeyError, TypeError, ZeroDivisionError) as e:
                out.append(Row(name, f"no figures ({type(e).__name__}: {e})", "", "", None))
    return out


def markdown(table: list[Row], command: str, meta: dict[str, Any]) -> str:
    verdict = {True: "met", False: "**not met**", None: "—"}
    lines = [
        BEGIN,
        f"`{command}`, {meta['when']}, {meta['cpus']} CPUs, load average {meta['load_start']} at the start and "
        f"{meta['load_end']} at the end ({meta['seconds']:.0f} s).",
        "",
        "| what | measured | peer or floor, same run | target | |",
        "|---|---|---|---|---|",
        *(f"| {r.what} | {r.measured} | {r.against or '—'} | {r.target or '—'} | {verdict[r.met]} |" for r in table),
        END,
    ]
    return "\n".join(lines)


def text(table: list[Row]) -> str:
    verdict = {True: "met", False: "NOT MET", None: ""}
    return "\n".join(
        f"- {r.what}: {r.measured}"
        + (f" | {r.against}" if r.against else "")
        + (f" | target {r.target}: {verdict[r.met]}" if r.target else "")
        for r in table
    )


def write(table: list[Row], command: str, meta: dict[str, Any], doc: Path = DOC) -> None:
    """Replace the generated block of docs/benchmarks.md (or put one after its title)."""
    block = markdown(table, command, meta)
    current = doc.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: block, current)
    else:
        title, _, rest = current.partition("\n")
        updated = f"{title}\n\n## Latest `make bench`\n\n{block}\n{rest}"
    doc.write_text(updated)
