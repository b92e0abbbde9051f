"""The llm backend's pure parts: reading answers, prompts from schemas, the wire format, Retry-After, costs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from podium.agent.backends import llm_prompts as prompts
from podium.agent.backends.base import BackendOutput
from podium.agent.backends.chat import MAX_INLINE_WAIT_SECONDS, MAX_WAITS, inline_wait
from podium.agent.backends.llm import chat_url, check_answer
from podium.agent.backends.openai_wire import (
    Completion,
    StreamReader,
    WireError,
    read_completion,
    request_body,
    response_format,
    retry_after_seconds,
    strict_compatible,
)
from podium.agent.pricing import task_cost, token_cost
from podium.api.agent import AgentSpec, ModelPricing
from podium.engine import contracts


# ------------------------------------------------------------------------------------------------ answers
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ('```\n{"a": 1}\n```\n', '{"a": 1}'),
        ('  ```JSON {"a": 1}```  ', '{"a": 1}'),
        ('{"a": 1}', '{"a": 1}'),
        ("text with ``` inside", "text with ``` inside"),
    ],
)
def test_strip_fences(text: str, expected: str) -> None:
    assert prompts.strip_fences(text) == expected


def test_read_json_tolerates_fences_and_prose_and_says_where_it_breaks() -> None:
    assert prompts.read_json('```json\n{"score": 7}\n```') == {"score": 7}
    assert prompts.read_json('Here you go: {"score": 7} hope it helps') == {"score": 7}
    with pytest.raises(prompts.AnswerError, match=r"not valid JSON: Unterminated string starting at: line 1 column 12"):
        prompts.read_json('{"answer": "cut in the mid')
    with pytest.raises(prompts.AnswerError, match="empty"):
        prompts.read_json("``` ```")


def test_free_answers_stay_text_unless_they_are_json() -> None:
    assert prompts.read_text("  A haiku.\n") == "A haiku."
    assert prompts.read_text('```json\n{"a": [1]}\n```') == {"a": [1]}
    assert prompts.read_text("```python\nprint(1)\n```") == "```python\nprint(1)\n```"  # code is content


def test_a_cut_answer_is_reported_as_cut() -> None:
    schema = contracts.review().schema
    value, problem = check_answer(Completion('{"score": 7, "comment": "the dra', finish_reason="length"), schema)
    assert value is None and problem is not None and problem.startswith("the answer was cut at the token limit")
    value, problem = check_answer(Completion('{"score": 7, "comment": "fine"}'), schema)
    assert value == {"score": 7, "comment": "fine"} and problem is None
    _, problem = check_answer(Completion('{"score": 70, "comment": "fine"}'), schema)
    assert problem == "field 'score' is 70, must be <= 10"


# ------------------------------------------------------------------------------------------------ prompts
def test_content_is_readable_text_not_wrapper_json() -> None:
    task_input = {
        "input": {"problem": "name a cache"},
        "generation": 2,
        "bestScore": 0.4,
        "best": None,
        "solutions": ["LRU", "a two-level\ncache"],
    }
    assert prompts.render(task_input) == (
        "Input:\n  Problem: name a cache\nGeneration: 2\nBest score: 0.4\nSolutions:\n"
        "  1. LRU\n  2. a two-level\n     cache"
    )
    assert "{" not in prompts.render({"task": "t", "upstream": {"fetch": {"rows": [1, 2]}}})


def test_the_instruction_comes_from_the_schema_with_types_bounds_and_descriptions() -> None:
    assert prompts.instruction(contracts.review().schema) == (
        "Review the proposal: does it improve the current solution? 0 = worse or useless, 10 = excellent.\n"
        "Answer with JSON only: an object with these fields:\n"
        '"score": your score, an integer from 0 to 10\n'
        '"comment": why, in one sentence, text of at most 200 characters'
    )
    assert prompts.fields(contracts.evaluate(3).schema) == [
        '"scores": one per candidate, in order, a list of exactly 3 integers from 0 to 10'
    ]
    assert prompts.fields(contracts.plan(["python"]).schema) == [
        '"tasks": the tasks, a list of 1 to 6 objects, each with:',
        '  "name": a short name: lowercase words joined by dashes, text',
        '  "description": what the agent doing this task must do, text of at most 200 characters',
        '  "capabilities": skills the task needs, a list of at most 3 of "python"',
    ]
    # A user's schema need not be an object, nor describe itself.
    listed = {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {"a": {"type": "boolean"}}}}
    assert (
        prompts.instruction(listed)
        == 'Answer with JSON only: a list of at most 2 objects, each with:\n"a": true or false'
    )
    assert prompts.instruction({"type": "number", "minimum": 0}) == "Answer with JSON only: a number of at least 0"


def test_messages_put_the_content_first_then_the_instruction() -> None:
    schema = contracts.review().schema
    messages = prompts.build_messages("You review code.", {"proposal": "use a set"}, schema)
    assert messages[0] == {"role": "system", "content": "You review code."}
    assert messages[1]["content"] == "Proposal: use a set\n\n" + prompts.instruction(schema)
    free = prompts.build_messages(None, "Write a haiku about Redis", None)
    assert free == [{"role": "user", "content": "Write a haiku about Redis"}]
    again = prompts.reask("x" * 1000, "missing field 'score'")
    assert len(again[0]["content"]) < 700 and "missing field 'score'" in again[1]["content"]


# ------------------------------------------------------------------------------------------------ wire
def test_response_format_is_strict_only_for_closed_schemas() -> None:
    closed = contracts.review().schema
    fmt = response_format(closed, "json_schema", "review")
    assert fmt == {"type": "json_schema", "json_schema": {"name": "review", "schema": closed, "strict": True}}
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert not strict_compatible(loose) and response_format(loose, "json_schema", "x y")["json_schema"]["name"] == "x_y"
    assert response_format(closed, "json_object", "review") == {"type": "json_object"}
    body = request_body(
        "m", [], temperature=0.0, max_tokens=64, seed=7, frequency_penalty=0.5, response=fmt, stream=True
    )
    assert body["frequency_penalty"] == 0.5
    assert body["stream_options"] == {"include_usage": True} and body["seed"] == 7 and body["max_tokens"] == 64


def test_completions_whole_and_streamed() -> None:
    whole = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    assert read_completion(whole) == Completion("hi", "stop", 12, 3)
    with pytest.raises(WireError, match="no choices"):
        read_completion({"choices": []})
    with pytest.raises(WireError, match="overloaded"):
        read_completion({"error": {"message": "overloaded"}})
    reader = StreamReader()
    lines = [
        ": keep-alive",
        'data: {"choices": [{"delta": {"role": "assistant"}}]}',
        'data: {"choices": [{"delta": {"content": "{\\"a\\""}}]}',
        'data: {"choices": [{"delta": {"content": ": 1}"}, "finish_reason": "stop"}]}',
        'data: {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 5}}',
        "data: [DONE]",
    ]
    assert [reader.feed(line) for line in lines] == [False, False, True, True, False, False]
    assert reader.done and reader.completion(0.1) == Completion('{"a": 1}', "stop", 20, 5, 0.1)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("3", now) == 3.0
    assert retry_after_seconds("1.5", now) == 1.5
    assert retry_after_seconds("Wed, 01 Jan 2025 12:00:07 GMT", now) == 7.0
    assert retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0  # already past
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None
    assert retry_after_seconds("-4", now) == 0.0 and retry_after_seconds("nan", now) is None


def test_throttled_calls_wait_only_when_it_fits_in_the_task() -> None:
    assert inline_wait(2.0, 0, now=100.0, deadline=110.0) == 2.0
    assert inline_wait(6.0, 0, now=100.0, deadline=110.0) is None  # more than half of what is left: hand back
    assert inline_wait(None, 1, now=0.0, deadline=None) == 2.0  # no Retry-After: 1, 2, 4 s
    assert inline_wait(MAX_INLINE_WAIT_SECONDS + 1, 0, now=0.0, deadline=None) is None
    assert inline_wait(1.0, MAX_WAITS, now=0.0, deadline=None) is None
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"


# ------------------------------------------------------------------------------------------------ cost
def llm_spec(**extra: object) -> AgentSpec:
    llm = {"model": "m", "baseURL": "http://h/v1", **extra}
    return AgentSpec.model_validate({"role": "r", "backend": {"llm": llm}, "pricing": {"perTask": 0.01}})


def test_cost_from_per_million_prices() -> None:
    prices = ModelPricing(input_per_million=0.5, output_per_million=1.5)
    assert token_cost(prices, 2_000, 1_000) == pytest.approx(0.0025)
    spec = llm_spec(pricing={"inputPerMillion": 0.5, "outputPerMillion": 1.5})
    used = BackendOutput("x", tokens=3_000, prompt_tokens=2_000, completion_tokens=1_000)
    assert task_cost(spec, "execute", used, ok=True) == pytest.approx(0.0125)  # perTask + tokens
    assert task_cost(spec, "execute", used, ok=False) == pytest.approx(0.0025)  # a failed call is still paid
    assert task_cost(spec, "bid", BackendOutput({}), ok=True) == 0.0
    assert task_cost(spec, "execute", BackendOutput("x", cost=0.3), ok=True) == 0.3  # the backend's own figure
    per_1k = AgentSpec.model_validate(
        {"role": "r", "backend": {"python": {"entrypoint": "m:f"}}, "pricing": {"per1kTokens": 2.0}}
    )
    assert task_cost(per_1k, "execute", BackendOutput("x", tokens=500), ok=True) == pytest.approx(1.0)


def test_a_copied_placeholder_is_no_answer() -> None:
    schema = contracts.assignments(["research"]).schema
    copied = {"assignments": {"research": ["<text, at most 300 characters: one task>"]}}
    _, problem = check_answer(Completion(json.dumps(copied)), schema)
    assert problem == (
        "field 'assignments.research[0]' repeats the form's placeholder instead of answering: write the content itself"
    )
    assert prompts.copied_placeholder({"a": ["x", "<y>"]}) == "a[1]"
    assert prompts.copied_placeholder({"a": "x <y> z"}) is None


def test_an_answer_that_repeats_its_fields_description_is_no_answer() -> None:
    schema = contracts.assignments(["research"]).schema  # each team's tasks: a list of texts ("one task")
    for copied in ("one task", "One task, text of at most 300 characters.", "text of at most 300 characters"):
        _, problem = check_answer(Completion(json.dumps({"assignments": {"research": [copied]}})), schema)
        assert problem == (
            "field 'assignments.research[0]' repeats the form's description instead of answering: write the content "
            "itself"
        ), copied
    # What the model was shown counts: bounds fitted to its token limit say "at most 45 characters".
    shown = prompts.fit_to_tokens(schema, 40)
    limit = shown["properties"]["assignments"]["properties"]["research"]["items"]["maxLength"]
    copied = {"assignments": {"research": [f"one task, text of at most {limit} characters"]}}
    assert check_answer(Completion(json.dumps(copied)), schema, shown)[1] is not None
    # Content that merely starts like the note, lists and nested fields.
    answer = {"assignments": {"research": ["One task is to find the history of unit tests"]}}
    assert check_answer(Completion(json.dumps(answer)), schema)[1] is None
    plan = contracts.plan(["research"]).schema
    tasks = {"tasks": [{"name": "find-facts", "description": "what the agent doing this task must do",
                        "capabilities": ["research"]}]}  # fmt: skip
    assert prompts.copied_description(tasks, plan) == "tasks[0].description"
    assert prompts.copied_description({"unknown": "the part"}, schema) is None


def test_text_bounds_shrink_to_fit_the_token_limit() -> None:
    synthesis = contracts.synthesis().schema  # an answer of up to 1000 characters
    assert prompts.fit_to_tokens(synthesis, None) is synthesis
    assert prompts.fit_to_tokens(synthesis, 4000) is synthesis  # fits: unchanged
    fitted = prompts.fit_to_tokens(synthesis, 200)
    limit = fitted["properties"]["answer"]["maxLength"]
    assert limit < 200 * prompts.CHARS_PER_TOKEN and limit >= 1
    assert synthesis["properties"]["answer"]["maxLength"] == contracts.ANSWER_CHARS  # the contract is untouched
    plan = prompts.fit_to_tokens(contracts.plan(["a"]).schema, 400)
    task = plan["properties"]["tasks"]["items"]["properties"]
    assert task["description"]["maxLength"] < contracts.COMMENT_CHARS
    assert task["name"] == contracts.plan(["a"]).schema["properties"]["tasks"]["items"]["properties"]["name"]
    # Whatever the shrunk schema accepts, the contract accepts.
    answer = {"answer": "x" * limit}
    assert contracts.synthesis().error(answer) is None


def test_an_agent_that_writes_state_is_asked_for_its_answer_and_its_writes_of_the_listed_keys_only() -> None:
    answer = {"type": "object", "description": "Review the draft.", "properties": {"score": {"type": "integer"}}}
    asked = prompts.with_writes(answer, ["notes", "plan"])
    assert asked is not None and asked["description"] == "Review the draft."
    good = {"output": {"score": 3}, "stateUpdates": [{"key": "notes", "value": "fine"}]}
    assert prompts.answer_problem(good, asked) is None
    assert prompts.answer_problem({"output": {"score": 3}, "stateUpdates": []}, asked) is None
    assert prompts.answer_problem({**good, "stateUpdates": [{"key": "secret", "value": 1}]}, asked) is not None
    assert prompts.answer_problem({"score": 3}, asked) is not None  # the envelope is required
    assert "stateUpdates" in prompts.instruction(asked)
    anything = prompts.with_writes(None, ["*"])
    assert anything is not None
    assert prompts.answer_problem({"output": "x", "stateUpdates": [{"key": "a/b", "value": [1]}]}, anything) is None
    assert prompts.with_writes(answer, []) is answer  # no keys to write: the task's own schema
