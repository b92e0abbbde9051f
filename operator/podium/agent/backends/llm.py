"""LLM backend: an OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM).

A task that carries an output schema (every kind the strategies send does, see ``podium.engine.contracts``) is
asked for with that schema as its ``response_format`` (its text bounds shrunk to fit ``maxTokens``), its answer
is read as JSON (code fences stripped) and checked against the task's schema; an answer that fails is shown to
the model with the reason, once, before the attempt fails. A task without a schema gets a free-form answer.

An Agent with ``spec.tools`` runs each task as a bounded tool loop (``podium.agent.tools.loop``); the turns the
agent remembers (``podium.agent.memory``) come before the task's own content.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from podium import telemetry
from podium.agent.backends import llm_prompts as prompts
from podium.agent.backends.base import BackendError, BackendOutput, InvalidOutput, Refused, TaskLike
from podium.agent.backends.chat import ChatClient, Request
from podium.agent.backends.openai_wire import Completion
from podium.agent.backends.usage import Usage
from podium.agent.memory import TASK_MEMORY
from podium.api.agent import LLM_API_KEY_ENV, LLMBackend
from podium.api.tools import ToolCalling, Tools
from podium.dataplane.allowance import of_task

__all__ = ["LLMRunner", "Usage", "chat_url", "check_answer", "models_url"]

log = logging.getLogger("podium.agent.llm")


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def models_url(base_url: str) -> str:
    """The API's model list, which the runtime asks to learn whether the server is up."""
    return base_url.rstrip("/").removesuffix("/chat/completions") + "/models"


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
    return value, prompts.answer_problem(value, schema, asked)


def _context(task: TaskLike) -> dict[str, Any] | None:
    """The task's blackboard and messages (podium.dataplane.collab), shown to the model after its content."""
    return getattr(task, "context", None)


class LLMRunner:
    name = "llm"
    uses_memory = True  # the runtime hands it the remembered turns (podium.agent.memory.TASK_MEMORY)

    def __init__(
        self,
        spec: LLMBackend,
        *,
        tools: Tools | None = None,
        writes: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        price: Callable[[BackendOutput], float] | None = None,
    ) -> None:
        self.spec = spec
        self.timeout_seconds = spec.timeout_seconds
        env = os.environ if env is None else env
        headers = {"Content-Type": "application/json"}
        api_key = env.get(LLM_API_KEY_ENV)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = ChatClient(
            chat_url(spec.base_url), headers, shown_url=spec.base_url, probe_url=models_url(spec.base_url)
        )
        self.tools = tools
        self.writes = tuple(writes)  # shared-state keys the model is asked to write (spec.blackboard.write)
        self.toolbox: Any = None
        if tools is not None:
            from podium.agent.tools.toolbox import Toolbox, ToolboxError

            try:
                self.toolbox = Toolbox(tools, env)
            except ToolboxError as exc:
                raise BackendError(f"tools: {exc}") from None
        self.price = price or (lambda _out: 0.0)
        # How this server's model calls tools; auto becomes native or schema once the server has shown which.
        self.calling = tools.calling if tools is not None else ToolCalling.auto

    async def start(self) -> None:
        await self.client.start()
        if self.toolbox is not None:
            from podium.agent.tools.toolbox import ToolboxError

            try:
                await self.toolbox.start()
            except ToolboxError as exc:
                raise BackendError(f"tools: {exc}") from None
            log.info(f"tools: {', '.join(sorted(self.toolbox.tools)) or 'none'} ({self.calling} calling)")

    async def probe(self) -> str | None:
        problem = await self.client.probe()
        return None if problem is None else f"its model server: {problem}"

    def handles(self, kind: str) -> bool:
        # Prices and capacity are the runtime's knowledge, not the model's.
        return kind != "bid"

    async def run(self, task: TaskLike) -> BackendOutput:
        out = await self._answer(task, prompts.with_writes(task.output_schema, self.writes))
        if not self.writes:
            return out
        # The model answered the envelope: its output is the task's answer, its writes the runtime's to check.
        envelope = out.output
        return replace(out, output=envelope["output"], state_updates=envelope["stateUpdates"])

    async def _answer(self, task: TaskLike, schema: dict[str, Any] | None) -> BackendOutput:
        # What the model is asked for fits in its token limit; the answer is checked against the task's schema.
        asked = prompts.fit_to_tokens(schema, self.spec.max_tokens) if schema is not None else None
        history = [(t.input, t.output) for t in TASK_MEMORY.get() or ()]
        usage = Usage()
        if self.toolbox is not None:
            return await self._tool_loop(task, schema, asked, history, usage)
        messages = prompts.build_messages(
            self.spec.system_prompt, task.input, asked, history=history, context=_context(task)
        )
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

    async def _tool_loop(
        self,
        task: TaskLike,
        schema: dict[str, Any] | None,
        asked: dict[str, Any] | None,
        history: list[tuple[str, str]],
        usage: Usage,
    ) -> BackendOutput:
        from podium.agent.tools import calling
        from podium.agent.tools.loop import ToolLoop

        assert self.tools is not None

        def loop() -> ToolLoop:
            async def ask(
                messages: list[dict[str, Any]],
                schema: dict[str, Any] | None,
                tools: list[dict[str, Any]] | None,
                tool_choice: str,
            ) -> Completion:
                return await self._ask(messages, schema, str(task.kind), usage, tools=tools, tool_choice=tool_choice)

            return ToolLoop(
                ask=ask,
                toolbox=self.toolbox,
                spec=self.tools,  # type: ignore[arg-type]
                usage=usage,
                allowance=of_task(task.meta),
                price=self.price,
                asked=asked,
                schema=schema,
            )

        if self.calling != ToolCalling.schema:
            first = loop()
            messages = prompts.build_messages(
                self.spec.system_prompt, task.input, asked, history=history, context=_context(task)
            )
            try:
                out = await first.run_native(messages)
            except Refused as exc:
                if self.calling != ToolCalling.auto or first.rounds > 0:
                    raise
                log.warning(f"{exc}; the server refuses native tools: calling tools through the answer's schema")
                self.calling = ToolCalling.schema
            else:
                self.calling = ToolCalling.native
                return out
        tools_text = calling.tools_prompt(list(self.toolbox.tools.values()))
        messages = prompts.build_messages(
            self.spec.system_prompt, task.input, asked, history=history, tools=tools_text, context=_context(task)
        )
        return await loop().run_schema(messages)

    async def _ask(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any] | None,
        kind: str,
        usage: Usage,
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str = "auto",
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
            tools=tools,
            tool_choice=tool_choice,
        )
        try:
            with self._traced(schema) as span:
                completion = await self.client.complete(request)
                span.set(answered(completion))
        except BackendError as exc:
            if exc.spent is None and usage.spent_any:
                exc.spent = usage.output()  # earlier calls' tokens were spent even if this one failed
            raise
        usage.add(completion)
        return completion

    def _traced(self, schema: dict[str, Any] | None) -> telemetry.Scope:
        """The model call's span (GenAI inference attributes), docs/observability.md."""
        spec = self.spec
        return telemetry.model_span(
            model=spec.model,
            base_url=spec.base_url,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            seed=spec.seed,
            frequency_penalty=spec.frequency_penalty,
            output_type="json" if schema is not None else "text",
        )

    async def close(self) -> None:
        if self.toolbox is not None:
            await self.toolbox.close()
        await self.client.close()


def answered(completion: Completion) -> dict[str, telemetry.attributes.AttributeValue]:
    """What a model call's span records of its answer."""
    return telemetry.attributes.model_response(
        input_tokens=completion.prompt_tokens,
        output_tokens=completion.completion_tokens,
        finish_reason=completion.finish_reason,
        response_model=completion.model,
        response_id=completion.id,
    )
