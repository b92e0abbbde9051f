"""The LLM overhead benchmark compares like with like: its direct request is the body the llm backend sends, and a
tiny run reports both sides, their difference and the throughput at each width."""

from __future__ import annotations

import pytest

from bench import llm_overhead
from podium.agent.backends.llm import LLMRunner
from podium.api.agent import LLMBackend
from podium.dataplane.messages import Task
from podium_localcluster.modelserver import LlamaServer
from tests.support.fault_proxy import FaultProxy


async def test_the_direct_request_is_the_one_the_llm_backend_sends(model_server: LlamaServer) -> None:
    async with FaultProxy(model_server.url) as proxy:
        config = llm_overhead.agent_config(proxy.url, llm_overhead.SHORT)
        runner = LLMRunner(LLMBackend.model_validate(config["backend"]["llm"]))
        await runner.start()
        try:
            payload = {"input": llm_overhead.task_input("0123456789ab"), "task": "t3"}
            await runner.run(Task(id="t-1", kind="execute", input=payload, namespace="bench", agent="short"))
        finally:
            await runner.close()
    (seen,) = proxy.seen
    assert seen.body == llm_overhead.direct_body(3, "0123456789ab", llm_overhead.SHORT)


def test_a_tiny_run_reports_both_sides_and_the_throughput_per_width() -> None:
    report = llm_overhead.run(llm_overhead.Plan(tasks=4, widths=(1, 2), rounds=1, warmup=1))
    lat = report["latency"]
    assert lat["tasks"] == 4 and lat["max_tokens"] == llm_overhead.SHORT
    for side in ("podium", "direct", "outside_model"):
        assert 0 < lat[side]["p50_ms"] <= lat[side]["p99_ms"]
    assert lat["overhead"]["p50_ms"] == pytest.approx(lat["podium"]["p50_ms"] - lat["direct"]["p50_ms"], abs=0.02)
    # What Podium adds outside the model call is part of its run's time, never more.
    assert lat["outside_model"]["p50_ms"] < lat["podium"]["p50_ms"]
    assert [w["tasks"] for w in report["throughput"]] == [1, 2]
    assert all(w["podium_tokens_per_s"] > 0 and w["direct_tokens_per_s"] > 0 for w in report["throughput"])
    assert "overhead p50" in llm_overhead.table(report)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert llm_overhead.percentile(values, 50) == 50.0
    assert llm_overhead.percentile(values, 99) == 99.0
    assert llm_overhead.percentile([3.0], 99) == 3.0
