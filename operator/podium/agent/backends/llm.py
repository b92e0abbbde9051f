"""LLM backend: an OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM).

A task that carries an output schema (every kind the strategies send does, see ``podium.engine.contracts``) is
asked for with that schema as its ``response_format`` (its text bounds shrunk to fit ``maxTokens``), its answer
is read as JSON (code fences stripped) and checked against the task's schema; an answer that fails is shown to
the model with the reason, once, before the attempt fails. A task without a schema gets a free-form answer.
"""

from __future__ import annotations

import os
from typing import Any

from podium.agent.backends import llm_prompts as prompts
from podium.agent.backends.base import BackendError, BackendOutput, InvalidOutput, TaskLike
from podium.agent.backends.chat import ChatClient, Request
from podium.agent.backends.openai_wire import Completion
from podium.api.agent import LLM_API_KEY_ENV, LLMBackend
from podium.api.json_schema import first_error


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def check_answer(
    completion: Completion, schema: dict[str, Any], asked: dict[str, Any] | None = None
) -> tuple[Any, str | None]:
    """The answer's value and what is wrong with it (None: it honours the schema). ``asked`` is the schema the
    model was shown (its bounds fitted to the token limit), whose field notes a copied answer would repeat."""
    try:
        value = prompts.read_json(completion.content)
    except prompts.AnswerError as exc:
        if completion.cut:
            return None, f"the answer was cut at the token limit before it was complete ({exc}): answer shorter"
        return None, str(exc)
    problem = first_error(schema, value)
    if problem is None and (copied := prompts.copied_placeholder(value)) is not None:
        problem = f"field {copied!r} repeats the form's placeholder instead of answering: write the content itself"
    if problem is None and (copied := prompts.copied_description(value, asked or schema)) is not None:
        problem = f"field {copied!r} repeats the form's description instead of answering: write the content itself"
    return value, problem


class Usage:
    """Tokens of every call one task made (a re-ask is a second call), and the first call's first token."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.first_token_seconds: float | None = None

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        if self.first_token_seconds is None:
            self.first_token_seconds = completion.first_token_seconds

    def output(self, value: Any = None) -> BackendOutput:
        return BackendOutput(
            value,
            tokens=self.prompt_tokens + self.completion_tokens,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            first_token_seconds=self.first_token_seconds,
        )


class LLMRunner:
    name = "llm"

    def __init__(self, spec: LLMBackend) -> None:
        self.spec = spec
        self.timeout_seconds = spec.timeout_seconds
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(LLM_API_KEY_ENV)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = ChatClient(chat_url(spec.base_url), headers, shown_url=spec.base_url)

    async def start(self) -> None:
        await self.client.start()

    def handles(self, kind: str) -> bool:
        # Prices and capacity are the runtime's knowledge, not the model's.
        return kind != "bid"

    async def run(self, task: TaskLike) -> BackendOutput:
        schema = task.output_schema
        # What the model is asked for fits in its token limit; the answer is checked against the task's schema.
        asked = prompts.fit_to_tokens(schema, self.spec.max_tokens) if schema is not None else None
        messages = prompts.build_messages(self.spec.system_prompt, task.input, asked)
        usage = Usage()
        completion = await self._ask(messages, asked, str(task.kind), usage)
        if schema is None:
            return usage.output(prompts.read_text(completion.content))
        value, problem = check_answer(completion, schema, asked)
        if problem is None:
            return usage.output(value)
        messages = [*messages, *prompts.reask(completion.content, problem)]
        completion = await self._ask(messages, asked, str(task.kind), usage)
        value, problem = check_answer(completion, schema, asked)
        if problem is None:
            return usage.output(value)
        raise InvalidOutput(
            f"llm: the answer does not honour the task's output schema (asked twice): {problem}", spent=usage.output()
        )

    async def _ask(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None, kind: str, usage: Usage
    ) -> Completion:
        request = Request(
            model=self.spec.model,
            messages=messages,
            temperature=self.spec.temperature,
            max_tokens=self.spec.max_tokens,
            seed=self.spec.seed,
            frequency_penalty=self.spec.frequency_penalty,
            schema=schema,
            schema_name=kind,
        )
        try:
            completion = await self.client.complete(request)
        except BackendError as exc:
            if exc.spent is None and (usage.prompt_tokens or usage.completion_tokens):
                exc.spent = usage.output()  # the first call's tokens were spent even if the re-ask failed
            raise
        usage.add(completion)
        return completion

    async def close(self) -> None:
        await self.client.close()
