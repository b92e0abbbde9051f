"""How the model asks for a tool call and how its answers are read: pure functions, no I/O.

``schema`` calling: every round's answer is constrained (``response_format``) to one of ``{"tool": <name>,
"arguments": <that tool's input schema>}`` per tool, or ``{"answer": <the task's contract>}``; the system prompt
lists the tools with their arguments, generated from their input schemas as the task's own fields are. When no
more calls are allowed, only the answer branch remains. ``native`` calling: the tools go as OpenAI ``tools`` and the
model's ``tool_calls`` are read; its final answer is the message's content, checked against the contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from podium.agent.backends import llm_prompts as prompts
from podium.agent.tools.mcp import CallOutcome, ToolInfo

TOOL_KEY = "tool"
ARGUMENTS_KEY = "arguments"
ANSWER_KEY = "answer"
FREE_ANSWER: dict[str, Any] = {"type": "string", "minLength": 1}  # a task without a contract answers text


# ------------------------------------------------------------------------------------------------ schemas
def arguments_schema(tool: ToolInfo) -> dict[str, Any]:
    """A tool's input schema as the ``arguments`` of a call; one that is not an object schema takes an object."""
    schema = tool.input_schema
    return schema if isinstance(schema, dict) and schema.get("type", "object") == "object" else {"type": "object"}


def call_schema(tool: ToolInfo) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {TOOL_KEY: {"const": tool.name}, ARGUMENTS_KEY: arguments_schema(tool)},
        "required": [TOOL_KEY, ARGUMENTS_KEY],
        "additionalProperties": False,
    }


def answer_schema(asked: dict[str, Any] | None) -> dict[str, Any]:
    """The final answer, wrapped: ``{"answer": <contract>}`` (any text for a task without one)."""
    return {
        "type": "object",
        "properties": {ANSWER_KEY: asked if asked is not None else FREE_ANSWER},
        "required": [ANSWER_KEY],
        "additionalProperties": False,
    }


def round_schema(tools: list[ToolInfo], asked: dict[str, Any] | None, *, calls_left: bool) -> dict[str, Any]:
    """What one round's answer may be: a call of any tool, or the final answer; only the answer without calls."""
    if not calls_left or not tools:
        return answer_schema(asked)
    return {"anyOf": [*(call_schema(t) for t in tools), answer_schema(asked)]}


def native_tools(tools: list[ToolInfo]) -> list[dict[str, Any]]:
    """The tools as OpenAI's ``tools`` field of a request."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": arguments_schema(t)},
        }
        for t in tools
    ]


# ------------------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class Decision:
    """What the model said in one round: a call (``tool`` set), a final answer, or something unusable
    (``problem`` set)."""

    tool: str | None = None
    arguments: Any = None
    answer: Any = None
    problem: str | None = None


def read_decision(text: str, cut: bool, schema: dict[str, Any] | None, *, calls_left: bool) -> Decision:
    """A schema-mode answer. The final answer is checked against the task's ``schema`` (when it has one)."""
    try:
        value = prompts.read_json(text)
    except prompts.AnswerError as exc:
        if cut:
            return Decision(problem=f"the answer was cut at the token limit before it was complete ({exc})")
        return Decision(problem=str(exc))
    if isinstance(value, dict) and TOOL_KEY in value:
        if not calls_left:
            return Decision(problem='no more tool calls are allowed: give your final answer as {"answer": ...}')
        tool = value[TOOL_KEY]
        if not isinstance(tool, str) or not tool:
            return Decision(problem=f'"{TOOL_KEY}" must be the name of a tool')
        return Decision(tool=tool, arguments=value.get(ARGUMENTS_KEY, {}))
    if isinstance(value, dict) and set(value) == {ANSWER_KEY}:
        return final(value[ANSWER_KEY], schema)
    # An answer in the contract's own shape, without the wrapper, is still the answer if it honours the contract.
    if schema is not None and prompts.answer_problem(value, schema) is None:
        return Decision(answer=value)
    return Decision(problem='answer {"tool": ..., "arguments": {...}} to call a tool, or {"answer": ...} to finish')


def final(value: Any, schema: dict[str, Any] | None) -> Decision:
    problem = prompts.answer_problem(value, schema) if schema is not None else None
    return Decision(answer=value, problem=problem)


def read_arguments(text: str) -> tuple[Any, str | None]:
    """A native call's arguments (JSON text); an empty text is no arguments."""
    if not text.strip():
        return {}, None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"the arguments are not valid JSON: {exc}"


# ------------------------------------------------------------------------------------------------ prompts
def tools_prompt(tools: list[ToolInfo]) -> str:
    """The system prompt's part on tools (schema mode): each tool, what it does, its arguments, how to call."""
    lines = ["You can call these tools:"]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description.strip() or 'no description'}")
        arguments = prompts.fields(arguments_schema(tool), "    ")
        lines.extend(["  Arguments:", *arguments] if arguments else ["  Arguments: none"])
    lines.append(
        f'To call a tool, answer with JSON only: {{"{TOOL_KEY}": "<name>", "{ARGUMENTS_KEY}": {{...}}}}. You then '
        f'get its result. When you have what you need, give your final answer as {{"{ANSWER_KEY}": ...}}.'
    )
    return "\n".join(lines)


def outcome_text(outcome: CallOutcome, limit: int) -> str:
    """What the model is shown of a call's result: the result, or why the call failed; cut at ``limit``."""
    text = outcome.text if outcome.ok else f"the call failed: {outcome.text}"
    return text if len(text) <= limit else text[:limit] + f"... [cut: {len(text) - limit} more characters]"


def result_turn(tool: str, shown: str, instruction: str, *, calls_left: bool) -> str:
    """The user turn after a call (schema mode): its result, then what to do next."""
    then = (
        f'Call another tool, or give your final answer as {{"{ANSWER_KEY}": ...}}.'
        if calls_left
        else f'No more tool calls: give your final answer now, as {{"{ANSWER_KEY}": ...}}.'
    )
    return f"Result of {tool}:\n{shown}\n\n{instruction}\n{then}".strip()


def repeat_turn(tool: str, instruction: str) -> str:
    """The user turn after a call that repeats an earlier one: the model has its result already."""
    return (
        f"You already called {tool} with these arguments; its result is above. "
        f'Give your final answer now, as {{"{ANSWER_KEY}": ...}}.\n\n{instruction}'
    ).strip()
