"""How the model is asked for tool calls and how its answers are read (podium.agent.tools.calling, toolbox)."""

from __future__ import annotations

import json

import pytest

from podium.agent.backends.openai_wire import StreamReader, read_completion, request_body
from podium.agent.tools import calling
from podium.agent.tools.mcp import CallOutcome, ToolInfo, result_text
from podium.agent.tools.toolbox import ToolboxError, canonical, offered, server_headers
from podium.api.tools import ToolServer, header_env

CLOCK = ToolInfo(
    "time",
    "get_current_time",
    "Get the current time.",
    {
        "type": "object",
        "properties": {"timezone": {"type": "string", "description": "IANA name"}},
        "required": ["timezone"],
    },
)
COUNT = ToolInfo("text", "word_count", "Count words.", {"type": "object", "properties": {"text": {"type": "string"}}})
ANSWER = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}


def test_a_round_offers_each_tool_and_the_answer_and_only_the_answer_without_calls_left() -> None:
    schema = calling.round_schema([CLOCK, COUNT], ANSWER, calls_left=True)
    branches = schema["anyOf"]
    assert [b["properties"]["tool"] for b in branches[:2]] == [{"const": "get_current_time"}, {"const": "word_count"}]
    assert branches[0]["properties"]["arguments"] == CLOCK.input_schema
    assert (
        branches[2]
        == calling.answer_schema(ANSWER)
        == {
            "type": "object",
            "properties": {"answer": ANSWER},
            "required": ["answer"],
            "additionalProperties": False,
        }
    )
    assert calling.round_schema([CLOCK], ANSWER, calls_left=False) == calling.answer_schema(ANSWER)
    assert calling.answer_schema(None)["properties"]["answer"] == calling.FREE_ANSWER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"tool": "word_count", "arguments": {"text": "a b"}}',
            calling.Decision(tool="word_count", arguments={"text": "a b"}),
        ),
        ('{"answer": {"n": 2}}', calling.Decision(answer={"n": 2})),
        ('```json\n{"n": 2}\n```', calling.Decision(answer={"n": 2})),  # the contract's own shape, unwrapped
    ],
)
def test_a_schema_mode_answer_is_a_call_or_the_final_answer(text: str, expected: calling.Decision) -> None:
    assert calling.read_decision(text, False, ANSWER, calls_left=True) == expected


def test_unusable_answers_say_what_to_do() -> None:
    assert "cut at the token limit" in str(
        calling.read_decision('{"answer": {"n"', True, ANSWER, calls_left=True).problem
    )
    wrong = calling.read_decision('{"answer": {"n": "two"}}', False, ANSWER, calls_left=True)
    assert wrong.answer == {"n": "two"} and "n" in str(wrong.problem)
    late = calling.read_decision('{"tool": "word_count", "arguments": {}}', False, ANSWER, calls_left=False)
    assert late.tool is None and "no more tool calls" in str(late.problem)
    neither = calling.read_decision('{"result": 1}', False, ANSWER, calls_left=True)
    assert neither.problem is not None and '"tool"' in neither.problem and '"answer"' in neither.problem
    assert calling.read_decision('{"answer": "free text"}', False, None, calls_left=True).answer == "free text"


def test_the_tools_prompt_lists_each_tool_its_arguments_and_how_to_call() -> None:
    text = calling.tools_prompt([CLOCK])
    assert "- get_current_time: Get the current time." in text
    assert '"timezone": IANA name, text' in text
    assert '{"tool": "<name>", "arguments": {...}}' in text and '{"answer": ...}' in text


def test_what_the_model_is_shown_of_a_call() -> None:
    assert calling.outcome_text(CallOutcome(True, "x" * 30, 0.1), 10) == "x" * 10 + "... [cut: 20 more characters]"
    assert calling.outcome_text(CallOutcome(False, "boom", 0.1), 100) == "the call failed: boom"
    assert calling.result_turn("t", "4", "Answer.", calls_left=False).endswith(
        'No more tool calls: give your final answer now, as {"answer": ...}.'
    )
    assert calling.read_arguments("") == ({}, None)
    assert calling.read_arguments("{bad")[1] is not None


def test_the_tools_offered_follow_each_servers_list_and_names_are_unique() -> None:
    servers = [
        ToolServer.model_validate({"name": "time", "stdio": {"command": "t"}, "tools": ["get_current_time"]}),
        ToolServer.model_validate({"name": "text", "stdio": {"command": "x"}}),
    ]
    listed = {"time": [CLOCK, ToolInfo("time", "convert_time", "", {})], "text": [COUNT]}
    assert list(offered(servers, listed)) == ["get_current_time", "word_count"]
    with pytest.raises(ToolboxError, match="tool server 'time' lists no tool 'nope'"):
        offered([servers[0].model_copy(update={"tools": ["nope"]})], listed)
    twice = {"time": [CLOCK], "text": [ToolInfo("text", "get_current_time", "", {})]}
    with pytest.raises(ToolboxError, match="offered by both 'time' and 'text'"):
        offered([servers[0], servers[1]], twice)
    assert canonical("t", {"a": 1, "b": 2}) == canonical("t", {"b": 2, "a": 1}) != canonical("t", {"a": 2, "b": 1})


def test_secret_headers_come_from_the_variable_the_operator_sets() -> None:
    server = ToolServer.model_validate(
        {
            "name": "search-api",
            "http": {
                "url": "https://mcp.example.com/mcp",
                "headers": [
                    {"name": "X-Org", "value": "acme"},
                    {"name": "Authorization", "secretKeyRef": {"name": "mcp", "key": "token"}},
                ],
            },
        }
    )
    variable = header_env("search-api", "Authorization")
    assert variable == "PODIUM_MCP_SEARCH_API__AUTHORIZATION"
    assert server_headers(server, {variable: "Bearer t"}) == {"X-Org": "acme", "Authorization": "Bearer t"}
    with pytest.raises(ToolboxError, match=f"{variable} is not set"):
        server_headers(server, {})


def test_tool_results_read_as_text() -> None:
    class Part:
        def __init__(self, type: str, text: str = "") -> None:
            self.type, self.text = type, text

    assert result_text([Part("text", "a"), Part("image")], None) == "a\n[image content omitted]"
    assert result_text([], {"n": 1}) == '{"n": 1}'


def test_native_tools_on_the_wire_and_tool_calls_read_back_whole_or_streamed() -> None:
    body = request_body("m", [], temperature=0, tools=calling.native_tools([CLOCK]), tool_choice="none")
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_current_time",
            "description": "Get the current time.",
            "parameters": CLOCK.input_schema,
        },
    }
    assert body["tool_choice"] == "none"
    assert "tools" not in request_body("m", [], temperature=0)

    whole = read_completion(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [{"id": "c1", "function": {"name": "word_count", "arguments": '{"text": "a"}'}}],
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    assert [(c.id, c.name, json.loads(c.arguments)) for c in whole.tool_calls] == [("c1", "word_count", {"text": "a"})]

    reader = StreamReader()
    for delta in (
        {"tool_calls": [{"index": 0, "id": "c9", "function": {"name": "word_count"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"text"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ': "b"}'}}]},
    ):
        reader.feed("data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}))
    (call,) = reader.completion(None).tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == ("c9", "word_count", {"text": "b"})
