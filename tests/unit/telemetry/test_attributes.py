"""What each span says: GenAI semantic-convention attributes on model and tool calls, Podium's on runs, steps,
attempts and tasks, and trace ids that follow a run's uid."""

from __future__ import annotations

import uuid

import pytest

from podium.telemetry import attributes as a


def test_a_model_call_carries_the_genai_inference_attributes() -> None:
    values = a.model_request(
        model="smollm2-135m-instruct",
        base_url="http://podium-model-server.ai.svc:8080/v1",
        temperature=0.0,
        max_tokens=400,
        seed=42,
        frequency_penalty=0.5,
        output_type="json",
    )
    assert values == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "smollm2-135m-instruct",
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.max_tokens": 400,
        "gen_ai.request.seed": 42,
        "gen_ai.request.frequency_penalty": 0.5,
        "gen_ai.output.type": "json",
        "server.address": "podium-model-server.ai.svc",
        "server.port": 8080,
    }
    assert a.model_name("smollm2-135m-instruct") == "chat smollm2-135m-instruct"


def test_settings_a_model_call_does_not_make_are_left_out() -> None:
    values = a.model_request(model="m", base_url="https://api.openai.com/v1")
    assert "gen_ai.request.seed" not in values and "gen_ai.request.max_tokens" not in values
    assert values["server.port"] == 443


def test_the_answer_records_usage_finish_reason_and_the_model_that_answered() -> None:
    values = a.model_response(
        input_tokens=120, output_tokens=33, finish_reason="stop", response_model="smol", response_id="chatcmpl-1"
    )
    assert values == {
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 33,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.model": "smol",
        "gen_ai.response.id": "chatcmpl-1",
    }
    assert a.model_response(input_tokens=0, output_tokens=0) == {
        "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0,
    }


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://myres.openai.azure.com/openai/deployments/x", "azure.ai.openai"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.mistral.ai/v1", "mistral_ai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai", "gcp.gemini"),
        # Any other server speaks OpenAI's API: the conventions name it after that API; server.address tells which.
        ("http://127.0.0.1:8080/v1", "openai"),
        ("http://vllm.inference:8000/v1", "openai"),
    ],
)
def test_the_provider_is_named_by_the_api_host(url: str, provider: str) -> None:
    assert a.provider_for(url) == provider


def test_a_url_with_a_bad_port_still_names_its_host() -> None:
    assert a.server_of("http://model:notaport/v1") == {"server.address": "model"}
    assert a.server_of("not a url") == {}


def test_a_tool_call_carries_the_execute_tool_attributes() -> None:
    values = a.tool_attributes("search", call_id="call_1", description="Search the web", server="http://mcp:3000/mcp")
    assert values == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.description": "Search the web",
        "gen_ai.tool.type": "extension",
        "podium.tool.server": "http://mcp:3000/mcp",
    }
    assert a.tool_name("search") == "execute_tool search"
    assert a.tool_attributes("t", tool_type=None) == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}


def test_an_attempt_is_an_agent_invocation_with_podium_attributes() -> None:
    values = a.attempt_attributes("reviewer", "stage-1", "review", 2, "u:stage-1:2")
    assert values["gen_ai.operation.name"] == "invoke_agent"
    assert values["gen_ai.agent.name"] == "reviewer"
    assert (values["podium.step"], values["podium.attempt"], values["podium.task.id"]) == ("stage-1", 2, "u:stage-1:2")
    assert a.attempt_name("reviewer") == "invoke_agent reviewer"
    assert a.attempt_outcome(0.25, 40, None, "") == {"podium.cost": 0.25, "podium.tokens": 40}


def test_run_and_task_attributes_name_the_run_strategy_and_agent() -> None:
    run = a.run_attributes("uid-1", "team-a", "review", "pipeline")
    assert run == {
        "podium.run.uid": "uid-1",
        "podium.orchestration": "team-a/review",
        "k8s.namespace.name": "team-a",
        "podium.strategy": "pipeline",
    }
    done = a.run_outcome("Failed", "BudgetExceeded", 1.5, 900, False)
    assert done["podium.run.phase"] == "Failed" and done["podium.cost"] == 1.5 and done["podium.tokens"] == 900
    task = a.task_attributes(
        namespace="team-a",
        agent="rev",
        replica="rev-0",
        kind="review",
        task_id="t",
        attempt=1,
        orchestration="",
        step="",
    )
    assert "podium.orchestration" not in task and "podium.step" not in task  # a task sent outside any run
    outcome = a.task_outcome("ok", 0.01, 150, 120, 30, 0.9)
    assert outcome["gen_ai.usage.input_tokens"] == 120 and outcome["gen_ai.usage.output_tokens"] == 30
    assert "gen_ai.usage.input_tokens" not in a.task_outcome("ok", 0.0, 0, 0, 0, None)  # a backend without a model


def test_span_names_stay_few_steps_and_runs_are_named_by_kind_and_strategy() -> None:
    assert a.step_name("review") == "step review"
    assert a.run_name("peerToPeer") == "run peerToPeer"
    assert a.task_name("plan") == "task plan"


def test_a_runs_trace_id_follows_its_uid() -> None:
    uid = str(uuid.uuid4())
    assert a.trace_id_for(uid) == a.trace_id_for(uid)
    assert a.trace_id_for(uid) != a.trace_id_for(str(uuid.uuid4()))
    assert len(a.trace_id_hex(uid)) == 32 and int(a.trace_id_hex(uid), 16) == a.trace_id_for(uid)


def test_a_ratio_sampler_keeps_about_its_share_of_runs() -> None:
    # The sampler reads the trace id's low 64 bits: a uid's fixed UUID bits must not decide which runs are kept.
    from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

    sampler = TraceIdRatioBased(0.25)
    uids = [str(uuid.UUID(int=i * 7919, version=4)) for i in range(2000)]
    kept = sum(
        sampler.should_sample(None, a.trace_id_for(u), "run").decision is Decision.RECORD_AND_SAMPLE for u in uids
    )
    assert 0.2 < kept / len(uids) < 0.3


def test_an_exception_is_reported_by_its_class_name() -> None:
    assert a.error_type(TimeoutError()) == "TimeoutError"
