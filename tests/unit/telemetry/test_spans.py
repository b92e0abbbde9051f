"""Spans as a tracing backend receives them: the agent's span is a child of the engine's attempt through the task
message, failures are marked, and with tracing off nothing is recorded and the SDK is never imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podium import telemetry
from podium.dataplane.messages import Task
from podium.telemetry import attributes
from tests.support.tracing import children, from_sdk, one, recording


def sent(task: Task) -> Task:
    """The task as the agent decodes it from the bus."""
    return Task.from_json(task.to_json())


def test_the_agents_span_is_a_child_of_the_attempt_that_sent_the_task() -> None:
    with recording() as exporter:
        with telemetry.run_span(uid="uid-1", namespace="ns", name="review", strategy="pipeline"):
            with telemetry.step_span(step="stage-0", kind="review"):
                attempt = telemetry.start_attempt(
                    agent="rev", step="stage-0", kind="review", attempt=1, task_id="uid-1:stage-0:1"
                )
                task = Task("uid-1:stage-0:1", "review", {}, "ns", "rev", "ns/review", traceparent=attempt.traceparent)
                received = sent(task)
        # The agent runs after the engine's context is gone: only the message links them.
        with telemetry.task_span(
            received.traceparent, namespace="ns", agent="rev", replica="rev-0", kind="review",
            task_id=received.id, attempt=1,
        ):  # fmt: skip
            with telemetry.model_span(model="smol", base_url="http://127.0.0.1:8080/v1") as model:
                model.set(attributes.model_response(input_tokens=10, output_tokens=5))
        attempt.end()
        rows = from_sdk(exporter.get_finished_spans())
    run, step, invoke, task_row, chat = (one(rows, n) for n in ("run", "step", "invoke_agent", "task", "chat"))
    assert {r.trace_id for r in rows} == {attributes.trace_id_hex("uid-1")}
    assert run.parent_id is None
    assert children(rows, run) == [step]
    assert children(rows, step) == [invoke]
    assert children(rows, invoke) == [task_row]
    assert children(rows, task_row) == [chat]
    assert (invoke.kind, task_row.kind, chat.kind) == ("CLIENT", "CONSUMER", "CLIENT")
    assert chat["gen_ai.usage.input_tokens"] == 10 and chat["gen_ai.request.model"] == "smol"


def test_a_task_without_trace_context_starts_a_trace_of_its_own() -> None:
    with recording() as exporter:
        for header in ("", "00-not-a-traceparent-01"):
            with telemetry.task_span(
                header, namespace="ns", agent="a", replica="a-0", kind="execute", task_id="t", attempt=1
            ):
                pass
        rows = from_sdk(exporter.get_finished_spans())
    assert len(rows) == 2 and all(r.parent_id is None for r in rows)
    assert rows[0].trace_id != rows[1].trace_id


def test_an_exception_marks_the_span_failed_and_goes_on() -> None:
    with recording() as exporter:
        with pytest.raises(ConnectionError), telemetry.tool_span("search", call_id="c1"):
            raise ConnectionError("mcp server went away")
        with telemetry.tool_span("lookup") as span:
            span.fail("tool_error", "the tool reported an error")
        rows = from_sdk(exporter.get_finished_spans())
    broken, refused = one(rows, "execute_tool search"), one(rows, "execute_tool lookup")
    assert broken.status == "ERROR" and broken["error.type"] == "ConnectionError"
    assert "exception" in broken.events  # with its stack, as the SDK records it
    assert refused.status == "ERROR" and refused["error.type"] == "tool_error"


def test_events_go_on_the_current_span() -> None:
    with recording() as exporter:
        with telemetry.model_span(model="m", base_url="http://x/v1"):
            telemetry.event("podium.llm.throttled", {"podium.llm.wait_seconds": 1.0})
        telemetry.event("outside any span")  # no span: nothing, and no error
        rows = from_sdk(exporter.get_finished_spans())
    assert one(rows, "chat").events == ("podium.llm.throttled",)


def test_a_run_resumed_after_a_restart_stays_in_its_trace() -> None:
    with recording() as exporter:
        for _ in range(2):  # the first operator process, then the one that resumes the run
            with telemetry.run_span(uid="uid-7", namespace="ns", name="o", strategy="swarm"):
                pass
        rows = from_sdk(exporter.get_finished_spans())
    assert [r.trace_id for r in rows] == [attributes.trace_id_hex("uid-7")] * 2
    assert telemetry.run_trace_id("uid-7") is None  # off again after the block


def test_off_every_helper_answers_the_shared_no_op() -> None:
    assert not telemetry.enabled()
    with telemetry.run_span(uid="u", namespace="n", name="o", strategy="pipeline") as span:
        assert span is telemetry.NOOP
        span.set({"x": 1})
        span.fail("e")
    assert telemetry.start_attempt(agent="a", step="s", kind="k", attempt=1, task_id="t") is telemetry.NOOP
    assert telemetry.NOOP.traceparent == "" and telemetry.traceparent() == ""
    assert telemetry.run_trace_id("u") is None
    assert b"traceparent" not in Task("t", "execute", {}, "ns", "a").to_json()  # untraced tasks keep their bytes


def test_off_the_engine_and_the_agent_runtime_never_import_the_sdk() -> None:
    script = """
import asyncio, json, sys
from podium import telemetry
import podium.engine.runner, podium.engine.context, podium.agent.runtime, podium.agent.backends.llm
import podium.operator.orchestrations.run
telemetry.configure("probe", environ={})
with telemetry.run_span(uid="u", namespace="n", name="o", strategy="pipeline"):
    with telemetry.tool_span("t"):
        pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("podium.telemetry.sdk", "opentelemetry")))))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    imported = json.loads(out.stdout)
    # redis-py imports the OpenTelemetry API for metrics of its own (inert until initialised); the tracing SDK, its
    # exporters and Podium's wiring of them stay out.
    assert not [
        m
        for m in imported
        if m.startswith(("podium.telemetry.sdk", "opentelemetry.sdk.trace", "opentelemetry.exporter"))
    ]


def test_tracing_asked_for_without_the_sdk_says_how_to_install_it() -> None:
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if the tracing extra were not installed
from podium import telemetry
try:
    telemetry.configure("probe", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
except telemetry.TracingConfigError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'podium[tracing]'" in out.stdout


def test_a_run_the_sampler_leaves_out_names_no_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    with recording() as exporter:
        named = {uid: telemetry.run_trace_id(uid) for uid in (f"uid-{i}" for i in range(40))}
        for uid in named:
            with telemetry.run_span(uid=uid, namespace="ns", name="o", strategy="swarm"):
                pass
        traced = {r.trace_id for r in from_sdk(exporter.get_finished_spans())}
    # The Started Event names a trace exactly when the run is recorded: never one a backend will not have.
    assert {t for t in named.values() if t} == traced
    assert 0 < len(traced) < len(named)
