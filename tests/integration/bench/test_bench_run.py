"""`make bench` plumbing on a tiny plan: the orchestration benchmark compares the engine with the bare bus."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from bench import instructions, orchestration, run
from podium_localcluster.redis_server import RedisServer


async def test_engine_overhead_is_measured_against_the_same_steps_through_the_bus() -> None:
    report = await orchestration.run(orchestration.Plan(stages=4, tasks=6, agents=2, runs=1))
    p = report["pipeline"]
    assert p["stages"] == 4
    # The bare bus needs two round trips per step (dispatch, result read); the engine adds its own.
    assert 2.0 <= p["bus_round_trips_per_step"] < 3  # + an idle re-read now and then on a slow machine
    assert p["engine_round_trips_per_step"] > p["bus_round_trips_per_step"]
    assert p["overhead_ms_per_step"] == pytest.approx(p["engine_ms_per_step"] - p["bus_ms_per_step"], abs=0.002)
    assert report["central_command"]["tasks"] == 6 and report["central_command"]["tasks_per_s"] > 0
    assert "overhead" in orchestration.table(report)


def test_bench_run_writes_one_json_per_benchmark_with_the_load_and_the_table_into_the_doc(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nProse kept by hand.\n")
    assert run.main(["--only", "orchestration", "--quick", "--out", str(tmp_path), "--doc", str(doc)]) == 0
    report = json.loads((tmp_path / "orchestration.json").read_text())
    assert report["pipeline"]["engine_ms_per_step"] > 0
    assert len(report["run"]["load_average_at_start"]) == 3
    written = doc.read_text()
    assert "Prose kept by hand." in written and "bench:begin" in written and "python -m bench.run" in written
    with pytest.raises(SystemExit):
        run.main(["--only", "nosuch", "--out", str(tmp_path)])


def test_orchestration_plan_rejects_sizes_over_the_api_cap() -> None:
    with pytest.raises(ValueError, match=r"1\.\.64"):
        orchestration.Plan(stages=65, tasks=1, agents=1, runs=1).check()


async def test_the_loops_whose_instructions_are_counted_run_the_engine_and_the_direct_steps() -> None:
    with RedisServer() as server:
        agents = asyncio.create_task(instructions.agents(server.url))
        try:
            for kind in instructions.LOOPS:  # each raises if a run fails or a step gets no result
                await asyncio.wait_for(instructions.loop(kind, server.url, 1), 60)
        finally:
            agents.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agents
