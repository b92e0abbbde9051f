"""A run's trace, read back from a real OTLP receiver: the OpenTelemetry Collector (built from its Go modules) on
127.0.0.1 receives what `podium operator` and the agent pods export, and writes it to a file this test reads.

The operator traces because its environment says so (OTEL_EXPORTER_OTLP_ENDPOINT, as the chart's tracing values
set it) and passes the setting on to the agent pods it creates; the llm agent calls the real model server. What a
user would look for in Jaeger or Tempo is asserted: one trace for the run, a span for every step and every agent
task, each agent's span the child of the operator's attempt that sent the task, and the GenAI attributes on the model
call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.telemetry.attributes import trace_id_hex
from podium_localcluster.modelserver import MODEL_ALIAS
from podium_localcluster.modelserver import LlamaServer as ModelServer
from podium_localcluster.redis_server import RedisServer
from tests.support.otelcol import Collector
from tests.support.tracing import SpanRow, children, named, one
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import Operator, agent, require_ready_node
from .orchestration_support import finished, kubectl_apply, obj, orchestration

SUMMARY = {
    "type": "object",
    "properties": {"summary": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["summary"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    with Collector(Path(tmp_path_factory.mktemp("otelcol"))) as running:
        yield running


@pytest.fixture(scope="module")
def traced_operator(
    cluster: ClusterHandle,
    ns: str,
    redis_server: RedisServer,
    collector: Collector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        # Export within a fraction of a second (the SDK's default waits 5 s); the agents get it from the operator.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    op = Operator(cluster, ns, redis_server.url, tmp_path_factory.mktemp("operator") / "operator.log", env=env)
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def agents(cluster: ClusterHandle, ns: str, traced_operator: Operator, model_server: ModelServer) -> list[str]:
    """An llm writer on the real model server and an echo checker, both Ready."""
    require_ready_node(cluster)
    llm = {"model": MODEL_ALIAS, "baseURL": model_server.base_url, "temperature": 0.0, "seed": 7, "maxTokens": 200}
    writer = agent("writer", backend={"llm": llm}, resilience={"timeoutSeconds": 180})
    kubectl_apply(cluster, ns, writer, agent("checker"))

    def ready() -> bool:
        out = cluster.kubectl("get", "-n", ns, "agents", "-o", "json")
        items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
        return len(items) == 2 and all((i.get("status") or {}).get("ready") == "1/1" for i in items)

    wait_for("both agents Ready 1/1", ready, timeout=240, every=1.0)
    return ["writer", "checker"]


def pods_of(cluster: ClusterHandle, ns: str, agent_name: str) -> set[str]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", f"podium.dev/agent={agent_name}", "-o", "json")
    return {p["metadata"]["name"] for p in json.loads(out.stdout)["items"]}


def trace_of(collector: Collector, trace: str, expected_tasks: int) -> list[SpanRow]:
    """The run's spans once the run's own span and every agent task's have reached the receiver."""

    def complete() -> list[SpanRow] | None:
        rows = [r for r in collector.spans() if r.trace_id == trace]
        done = named(rows, "run") and len(named(rows, "task")) >= expected_tasks
        return rows if done else None

    return wait_for("the run's trace in the collector", complete, timeout=60, every=0.5, detail=collector.log_tail)


def test_the_collector_receives_one_trace_of_the_run_across_the_operator_and_its_agent_pods(
    cluster: ClusterHandle, ns: str, collector: Collector, agents: list[str]
) -> None:
    run = orchestration(
        "traced",
        strategy="pipeline",
        input={"topic": "why a trace helps to debug a team of agents"},
        pipeline={
            "stages": [
                {"name": "draft", "agent": "writer", "retries": 1, "validate": {"jsonSchema": SUMMARY}},
                {"name": "check", "agent": "checker"},
            ]
        },
    )
    kubectl_apply(cluster, ns, run)
    status = finished(cluster, ns, "traced", timeout=300)
    assert status["phase"] == "Succeeded", status
    uid = obj(cluster, ns, "traced")["metadata"]["uid"]
    trace = trace_id_hex(uid)
    attempts_made = sum(int(t.get("attempts") or 1) for t in status["tasks"])
    rows = trace_of(collector, trace, attempts_made)

    # One trace: every span this run made, on either side, carries its id, and nothing of it went elsewhere.
    elsewhere = [r for r in collector.spans() if r.trace_id != trace and r.attributes.get("podium.run.uid") == uid]
    assert elsewhere == []
    root = one(rows, "run")
    assert root.parent_id is None and root.service == "podium-operator"
    assert (root["podium.strategy"], root["podium.run.phase"], root["podium.orchestration"]) == (
        "pipeline",
        "Succeeded",
        f"{ns}/traced",
    )

    # A span for every step, each with its attempts; each attempt's task span comes from the agent's pod.
    steps = {s["podium.step"]: s for s in children(rows, root)}
    assert sorted(steps) == ["stage-check", "stage-draft"]
    tasks: dict[str, SpanRow] = {}
    for step in steps.values():
        attempts = children(rows, step)
        assert attempts and all(a.name.startswith("invoke_agent ") for a in attempts)
        for attempt in attempts:
            (task,) = children(rows, attempt)  # the parent/child link crossed from the operator into the pod
            assert task.service == "podium-agent" and task.kind == "CONSUMER"
            assert task["podium.task.id"] == attempt["podium.task.id"]
            assert task.resource["k8s.pod.name"] in pods_of(cluster, ns, attempt["gen_ai.agent.name"])
            assert task.resource["k8s.namespace.name"] == ns
            tasks[task["podium.task.id"]] = task
    assert len(tasks) == attempts_made

    # The writer's model calls, with the GenAI conventions' attributes and the tokens the run was charged for.
    (draft,) = [t for t in tasks.values() if t["podium.step"] == "stage-draft" and t.status != "ERROR"]
    calls = children(rows, draft)
    assert calls, f"no model call under {draft.name}: {[r.name for r in rows]}"
    for call in calls:
        assert call.name == f"chat {MODEL_ALIAS}" and call.kind == "CLIENT"
        attrs: dict[str, Any] = call.attributes
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == MODEL_ALIAS
        assert attrs["gen_ai.output.type"] == "json"
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        assert attrs["server.address"] == "127.0.0.1"
    used = sum(c["gen_ai.usage.input_tokens"] + c["gen_ai.usage.output_tokens"] for c in calls)
    assert used == draft["podium.tokens"]
    (check,) = [t for t in tasks.values() if t["podium.step"] == "stage-check"]
    assert children(rows, check) == []  # the echo agent calls no model

    # `kubectl describe` leads to the trace.
    out = cluster.kubectl("get", "events", "-n", ns, "--field-selector=involvedObject.name=traced", "-o", "json")
    started = [e["message"] for e in json.loads(out.stdout)["items"] if e["reason"] == "Started"]
    assert started and trace in started[0]
