"""The OpenAI chat-completions wire format, as the ``llm`` backend speaks it: pure functions, no I/O.

Request bodies (``response_format`` with the task's schema, streaming with usage), answers (whole or streamed as
server-sent events), and ``Retry-After``. llama.cpp's ``llama-server``, vLLM, Ollama, LiteLLM and OpenAI all
speak it; where a server lacks a feature (``json_schema``, streaming) the client falls back, see ``chat``.
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JSON_SCHEMA = "json_schema"
JSON_OBJECT = "json_object"
_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class WireToolCall:
    """One call the model asked for in OpenAI's native ``tool_calls``; ``arguments`` is JSON text, as sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_seconds: float | None = None  # streamed answers only
    tool_calls: tuple[WireToolCall, ...] = ()
    # What the server says answered (its model name, the completion's id): for traces, where they may differ from
    # what was asked (an alias, a router).
    model: str | None = None
    id: str | None = None

    @property
    def cut(self) -> bool:
        """The model stopped at the token limit, not because it was done."""
        return self.finish_reason == "length"


class WireError(ValueError):
    """An answer that is not a chat completion; the message quotes what came instead."""


# ------------------------------------------------------------------------------------------------ requests
def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts the schema's objects: every object closed, every property required.
    (Our contracts are; a user's pipeline schema may not be, and then goes without ``strict``.)"""
    if isinstance(schema, list):
        return all(strict_compatible(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(props):
            return False
    return all(strict_compatible(v) for k, v in schema.items() if k not in ("enum", "const", "required"))


def response_format(schema: dict[str, Any], mode: str, name: str) -> dict[str, Any]:
    """``response_format`` for a schema: ``json_schema`` (the server constrains decoding to it) or ``json_object``
    (any JSON; the prompt carries the shape)."""
    if mode == JSON_OBJECT:
        return {"type": JSON_OBJECT}
    return {
        "type": JSON_SCHEMA,
        "json_schema": {
            "name": _SCHEMA_NAME.sub("_", name)[:64] or "answer",
            "schema": schema,
            "strict": strict_compatible(schema),
        },
    }


def request_body(
    model: str,
    messages: list[dict[str, Any]],
    *,
    temperature: float,
    max_tokens: int | None = None,
    seed: int | None = None,
    frequency_penalty: float | None = None,
    response: dict[str, Any] | None = None,
    stream: bool = False,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str = "auto",
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "temperature": temperature}
    if tools:
        body["tools"] = tools
        body["tool_choice"] = tool_choice
    if max_tokens:
        body["max_tokens"] = max_tokens
    if seed is not None:
        body["seed"] = seed
    if frequency_penalty is not None:
        body["frequency_penalty"] = frequency_penalty
    if response is not None:
        body["response_format"] = response
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # the last event carries the usage
    return body


# ------------------------------------------------------------------------------------------------ answers
def _usage(payload: dict[str, Any]) -> tuple[int, int]:
    usage = payload.get("usage") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    prompt = prompt if isinstance(prompt, int) and prompt >= 0 else 0
    completion = completion if isinstance(completion, int) and completion >= 0 else 0
    if not prompt and not completion and isinstance(usage.get("total_tokens"), int):
        completion = usage["total_tokens"]  # a server that reports only the total: count it, as completion
    return prompt, completion


def _error_of(payload: Any) -> str | None:
    if isinstance(payload, dict) and payload.get("error") is not None:
        error = payload["error"]
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    return None


def read_completion(payload: Any) -> Completion:
    """A whole (not streamed) ``chat.completion``."""
    error = _error_of(payload)
    if error is not None:
        raise WireError(f"the server answered with an error: {error[:500]}")
    try:
        choice = payload["choices"][0]
        content = choice["message"].get("content") or ""
        calls = tuple(_tool_call(raw, i) for i, raw in enumerate(choice["message"].get("tool_calls") or []))
    except (KeyError, IndexError, TypeError, AttributeError):
        raise WireError(f"answer has no choices[0].message.content: {json.dumps(payload)[:500]}") from None
    prompt, completion = _usage(payload)
    model, answer_id = _identity(payload)
    return Completion(
        str(content), choice.get("finish_reason"), prompt, completion, tool_calls=calls, model=model, id=answer_id
    )


def _tool_call(raw: dict[str, Any], index: int) -> WireToolCall:
    function = raw.get("function") or {}
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
    return WireToolCall(str(raw.get("id") or f"call_{index}"), str(function.get("name") or ""), text)


def _identity(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    model, answer_id = payload.get("model"), payload.get("id")
    return (model if isinstance(model, str) else None), (answer_id if isinstance(answer_id, str) else None)


class StreamReader:
    """Folds the ``data:`` lines of a streamed answer (``chat.completion.chunk`` events) into a Completion."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.done = False
        self.calls: dict[int, dict[str, str]] = {}  # tool_calls by index, their arguments in pieces
        self.model: str | None = None
        self.id: str | None = None

    def feed(self, line: str) -> bool:
        """Take one line of the event stream; True if it carried answer text (the first one times the first
        token)."""
        line = line.strip()
        if not line.startswith("data:"):
            return False  # comments, event names, blank separators
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            self.done = True
            return False
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise WireError(f"streamed event is not JSON: {data[:200]}") from None
        error = _error_of(event)
        if error is not None:
            raise WireError(f"the server answered with an error: {error[:500]}")
        if event.get("usage"):
            self.prompt_tokens, self.completion_tokens = _usage(event)
        if self.model is None and self.id is None:
            self.model, self.id = _identity(event)
        text = False
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.parts.append(str(delta["content"]))
                text = True
            for piece in delta.get("tool_calls") or []:
                text = self._feed_call(piece) or text
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return text

    def _feed_call(self, piece: dict[str, Any]) -> bool:
        """One streamed piece of a tool call: its first piece names it, later ones add to its arguments."""
        index = piece.get("index", len(self.calls))
        call = self.calls.setdefault(index if isinstance(index, int) else len(self.calls), {"id": "", "name": ""})
        function = piece.get("function") or {}
        call["id"] = call["id"] or str(piece.get("id") or "")
        call["name"] = call["name"] or str(function.get("name") or "")
        call["arguments"] = call.get("arguments", "") + str(function.get("arguments") or "")
        return True

    def completion(self, first_token_seconds: float | None) -> Completion:
        calls = tuple(
            WireToolCall(c["id"] or f"call_{i}", c["name"], c.get("arguments") or "{}")
            for i, c in sorted(self.calls.items())
        )
        return Completion(
            "".join(self.parts),
            self.finish_reason,
            self.prompt_tokens,
            self.completion_tokens,
            first_token_seconds,
            tool_calls=calls,
            model=self.model,
            id=self.id,
        )


# ------------------------------------------------------------------------------------------------ Retry-After
def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds (``"3"``, also ``"1.5"`` as some APIs send) or an
    HTTP date. None when absent or unreadable; a date in the past is 0."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # NaN, infinity
        return None
    return max(0.0, seconds)
