"""A run's trace across processes: the engine records in memory (the SDK's in-memory exporter), real `podium agent`
processes print their spans (``OTEL_TRACES_EXPORTER=console``), and the two halves join through the task messages on
a real Redis: one trace, a step per stage, an attempt per try, each agent's span the child of the attempt that sent
it, and GenAI attributes on the calls an llm agent makes to a real model."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.telemetry.attributes import trace_id_hex
from podium_localcluster.modelserver import MODEL_ALIAS
from podium_localcluster.modelserver import LlamaServer as ModelServer
from tests.integration.engine.fleet import Engine, Fleet, info, start_fleet
from tests.support.tracing import SpanRow, children, from_console, from_sdk, named, one, recording
from tests.support.wait import wait_for

AGENT_TRACING = {"OTEL_TRACES_EXPORTER": "console"}  # a span a line on stdout, as it ends
PIPELINE = {
    "strategy": "pipeline",
    "input": {"doc": "hello"},
    "pipeline": {"stages": [{"name": "draft", "agent": "w1", "retries": 1}, {"name": "check", "agent": "w2"}]},
}


def agent_spans(logs: Path, names: list[str], count: int) -> list[SpanRow]:
    """The task spans the agents printed, once ``count`` of them are there."""

    def read() -> list[SpanRow] | None:
        rows = [r for n in names for r in from_console((logs / f"{n}.log").read_text(errors="replace"))]
        return rows if len(named(rows, "task")) >= count else None

    return wait_for(f"{count} task spans from the agents", read, timeout=30)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("traced-fleet"))


@pytest.fixture(scope="module")
def fleet(redis_url: str, logs: Path) -> Iterator[Fleet]:
    yield from start_fleet(redis_url, logs, ["w1", "w2"], extra_env=AGENT_TRACING)


async def engine_for(fleet: Fleet) -> AsyncIterator[Engine]:
    fleet.reset()
    client = aioredis.Redis.from_url(fleet.redis_url)
    bus = Bus(client)
    yield Engine(fleet, client, bus)
    await bus.close()
    await client.aclose()


@pytest.fixture
async def engine(fleet: Fleet) -> AsyncIterator[Engine]:
    async for e in engine_for(fleet):
        yield e


async def test_one_trace_joins_the_engines_steps_and_attempts_with_the_agents_tasks(engine: Engine, logs: Path) -> None:
    engine.fleet.set_mode("w1", fail=1)  # the draft's first attempt fails, its retry succeeds
    engine.fleet.set_mode("w2", span="score the draft")  # the backend's own span, made with the OpenTelemetry API
    with recording("podium-operator") as exporter:
        outcome, uid = await engine.run(PIPELINE, [info("w1"), info("w2")])
        ours = from_sdk(exporter.get_finished_spans())
    assert outcome.phase == "Succeeded", outcome.message
    trace = trace_id_hex(uid)
    theirs = [r for r in agent_spans(logs, ["w1", "w2"], 3) if r.trace_id == trace]
    assert {r.trace_id for r in ours + theirs} == {trace}

    run = one(ours, "run")
    assert run.parent_id is None and run.service == "podium-operator"
    assert (run["podium.strategy"], run["podium.run.phase"], run["podium.run.uid"]) == ("pipeline", "Succeeded", uid)
    steps = {s["podium.step"]: s for s in children(ours, run)}
    assert sorted(steps) == ["stage-check", "stage-draft"]

    draft = sorted(children(ours, steps["stage-draft"]), key=lambda r: r["podium.attempt"])
    assert [(a.name, a["podium.attempt"], a.status) for a in draft] == [
        ("invoke_agent w1", 1, "ERROR"),
        ("invoke_agent w1", 2, "UNSET"),
    ]
    assert steps["stage-draft"]["podium.attempts"] == 2
    (check,) = children(ours, steps["stage-check"])
    # Each agent's span is the child of the attempt that sent its task: across processes, through the message.
    for attempt in [*draft, check]:
        (task,) = children(theirs, attempt)
        assert task.service == "podium-agent" and task.kind == "CONSUMER"
        assert task["podium.task.id"] == attempt["podium.task.id"]
        assert task["podium.agent"] == attempt["gen_ai.agent.name"]
    (checked,) = children(theirs, check)
    (own,) = children(theirs, checked)  # a python backend's own span joins the task's trace
    assert own.name == "score the draft"
    failed = one(children(theirs, draft[0]), "task")
    assert failed.status == "ERROR" and failed["error.type"] == "error" and failed["podium.outcome"] == "error"


# ------------------------------------------------------------------------------------------------ an llm agent
@pytest.fixture(scope="module")
def llm_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("traced-llm-fleet"))


@pytest.fixture(scope="module")
def llm_fleet(redis_url: str, model_server: ModelServer, llm_logs: Path) -> Iterator[Fleet]:
    spec = {
        "role": "writer",
        "backend": {
            "llm": {
                "model": MODEL_ALIAS,
                "baseURL": model_server.base_url,
                "temperature": 0.0,
                "seed": 7,
                "maxTokens": 200,
            }
        },
    }
    yield from start_fleet(redis_url, llm_logs, ["llm1"], spec=spec, extra_env=AGENT_TRACING)


@pytest.fixture
async def llm_engine(llm_fleet: Fleet) -> AsyncIterator[Engine]:
    async for e in engine_for(llm_fleet):
        yield e


async def test_an_llm_agents_model_calls_carry_the_genai_attributes(
    llm_engine: Engine, llm_logs: Path, model_server: ModelServer
) -> None:
    spec = {
        "strategy": "pipeline",
        "input": {"topic": "why tests should use real servers"},
        "pipeline": {"stages": [{"name": "write", "agent": "llm1", "retries": 0}]},
    }
    fast = info("llm1", "writer", retries=0)
    # A model on a shared 2-core machine gets time.
    agent = dataclasses.replace(fast, resilience=fast.resilience.model_copy(update={"timeout_seconds": 180}))
    with recording("podium-operator") as exporter:
        outcome, uid = await llm_engine.run(spec, [agent])
        ours = from_sdk(exporter.get_finished_spans())
    assert outcome.phase == "Succeeded", outcome.message
    theirs = [r for r in agent_spans(llm_logs, ["llm1"], 1) if r.trace_id == trace_id_hex(uid)]
    (attempt,) = named(ours, "invoke_agent")
    (task,) = children(theirs, attempt)
    calls = children(theirs, task)
    assert calls and all(c.name == f"chat {MODEL_ALIAS}" and c.kind == "CLIENT" for c in calls)
    first = calls[0]
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "openai"
    assert first["gen_ai.request.model"] == MODEL_ALIAS
    assert first["gen_ai.request.temperature"] == 0.0 and first["gen_ai.request.seed"] == 7
    assert first["server.address"] == "127.0.0.1" and first["server.port"] == model_server.port
    assert first["gen_ai.response.finish_reasons"] in (("stop",), ("length",))
    # The tokens on the model calls are the ones the run was charged for.
    used = sum(c["gen_ai.usage.input_tokens"] + c["gen_ai.usage.output_tokens"] for c in calls)
    assert used > 0 and used == outcome.tokens == task["podium.tokens"]
