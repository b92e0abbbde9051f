"""What one task's model calls used: every call's tokens (a re-ask and each round of a tool loop are calls of their
own) and the first call's first token."""

from __future__ import annotations

from typing import Any

from podium.agent.backends.base import BackendOutput
from podium.agent.backends.openai_wire import Completion
from podium.dataplane.toolcalls import ToolCall


class Usage:
    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.first_token_seconds: float | None = None
        self.calls = 0

    def add(self, completion: Completion) -> None:
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        if self.first_token_seconds is None:
            self.first_token_seconds = completion.first_token_seconds

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def spent_any(self) -> bool:
        return bool(self.prompt_tokens or self.completion_tokens)

    def output(self, value: Any = None, tool_calls: tuple[ToolCall, ...] | list[ToolCall] = ()) -> BackendOutput:
        return BackendOutput(
            value,
            tokens=self.tokens,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            first_token_seconds=self.first_token_seconds,
            tool_calls=tuple(tool_calls),
        )
