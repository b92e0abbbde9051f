"""The llm backend's tool loop: ask the model, run the tool it calls, show it the result, until it answers.

Bounded: at most ``spec.tools.maxCalls`` calls per attempt, then only a final answer is allowed; a call that
repeats an earlier one (same tool, same arguments) is not run again, and the model must answer; an unusable answer
is re-asked once. Before every round after the first, the tokens and cost spent so far are checked against what the
task's run had left at dispatch (``Task.meta["budget"]``): once that is spent the loop stops with
:class:`BudgetSpent`. A failed call is shown to the model as a failed call; it never fails the task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from podium import telemetry
from podium.agent.backends import llm_prompts as prompts
from podium.agent.backends.base import TASK_TOOL_CALLS, BackendOutput, BudgetSpent, InvalidOutput
from podium.agent.backends.openai_wire import Completion
from podium.agent.backends.usage import Usage
from podium.agent.tools import calling
from podium.agent.tools.toolbox import Toolbox, canonical
from podium.api.tools import Tools
from podium.dataplane.allowance import Allowance
from podium.dataplane.toolcalls import ToolCall

log = logging.getLogger("podium.agent.tools")

# ask(messages, response schema, native tools, tool_choice) -> the model's answer (its usage already counted)
Ask = Callable[[list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]] | None, str], Awaitable[Completion]]
Price = Callable[[BackendOutput], float]


class ToolLoop:
    """One task attempt's loop. ``asked`` is the contract as sent to the model (fit to its token limit),
    ``schema`` the contract an answer is checked against (None: a free-form answer)."""

    def __init__(
        self,
        *,
        ask: Ask,
        toolbox: Toolbox,
        spec: Tools,
        usage: Usage,
        allowance: Allowance,
        price: Price,
        asked: dict[str, Any] | None,
        schema: dict[str, Any] | None,
    ) -> None:
        self.ask = ask
        self.toolbox = toolbox
        self.spec = spec
        self.usage = usage
        self.allowance = allowance
        self.price = price
        self.asked = asked
        self.schema = schema
        recorder = TASK_TOOL_CALLS.get()
        self.calls: list[ToolCall] = recorder if recorder is not None else []
        self.made: set[str] = set()
        self.rounds = 0
        self.final_only = False
        self.reasked = False
        self.tools = list(toolbox.tools.values())
        self.instruction = prompts.instruction(asked) if asked is not None else ""

    # ------------------------------------------------------------------ shared
    def calls_left(self) -> bool:
        return not self.final_only and len(self.calls) < self.spec.max_calls

    def spent(self) -> BackendOutput:
        return self.usage.output(tool_calls=self.calls)

    def answer(self, value: Any) -> BackendOutput:
        return self.usage.output(value, tool_calls=self.calls)

    def check_budget(self) -> None:
        """Stop before a model call the run cannot pay for (the first one is paid: the engine dispatched it)."""
        if self.rounds == 0:
            return
        reason = self.allowance.spent(self.usage.tokens, self.price(self.spent()))
        if reason is not None:
            raise BudgetSpent(
                f"llm: tool loop stopped after {self.rounds} model calls and {len(self.calls)} tool calls: {reason}",
                spent=self.spent(),
            )

    def reask(self, messages: list[dict[str, Any]], answer: str, problem: str) -> None:
        if self.reasked:
            raise InvalidOutput(
                f"llm: the answer does not honour the task's output schema (asked twice): {problem}",
                spent=self.spent(),
            )
        self.reasked = True
        messages.extend(prompts.reask(answer, problem))

    async def call(self, tool: str, arguments: Any) -> str:
        """Run one call, record it, and return what the model is shown of it."""
        info = self.toolbox.tools.get(tool)
        with telemetry.tool_span(
            tool, description=info.description if info else None, server=info.server if info else None
        ) as span:
            server, outcome = await self.toolbox.call(tool, arguments)
            if not outcome.ok:
                span.fail("tool_error", outcome.text)
        shown = calling.outcome_text(outcome, self.spec.result_chars)
        self.calls.append(ToolCall(server, tool, arguments, outcome.ok, shown, outcome.seconds * 1000, self.rounds))
        self.made.add(canonical(tool, arguments))
        log.info(
            f"tool call {tool} on {server or '?'}: {'ok' if outcome.ok else 'failed'} in {outcome.seconds:.3f}s",
            extra={"tool": tool, "server": server, "ok": outcome.ok},
        )
        return shown

    # ------------------------------------------------------------------ schema-constrained calling
    async def run_schema(self, messages: list[dict[str, Any]]) -> BackendOutput:
        while True:
            self.check_budget()
            left = self.calls_left()
            completion = await self.ask(
                messages, calling.round_schema(self.tools, self.asked, calls_left=left), None, ""
            )
            self.rounds += 1
            decision = calling.read_decision(completion.content, completion.cut, self.schema, calls_left=left)
            if decision.problem is not None:
                self.reask(messages, completion.content, decision.problem)
                continue
            if decision.tool is None:
                return self.answer(decision.answer)
            messages.append({"role": "assistant", "content": completion.content})
            if canonical(decision.tool, decision.arguments) in self.made:
                self.final_only = True
                messages.append({"role": "user", "content": calling.repeat_turn(decision.tool, self.instruction)})
                continue
            shown = await self.call(decision.tool, decision.arguments)
            turn = calling.result_turn(decision.tool, shown, self.instruction, calls_left=self.calls_left())
            messages.append({"role": "user", "content": turn})

    # ------------------------------------------------------------------ native calling
    async def run_native(self, messages: list[dict[str, Any]]) -> BackendOutput:
        offered = calling.native_tools(self.tools)
        while True:
            self.check_budget()
            left = self.calls_left()
            completion = await self.ask(messages, self.asked, offered, "auto" if left else "none")
            self.rounds += 1
            if completion.tool_calls and left:
                await self._native_calls(messages, completion)
                continue
            if self.schema is None:
                return self.answer(prompts.read_text(completion.content))
            try:
                value = prompts.read_json(completion.content)
                problem = prompts.answer_problem(value, self.schema)
            except prompts.AnswerError as exc:
                value, problem = None, str(exc)
            if problem is None:
                return self.answer(value)
            self.reask(messages, completion.content, problem)

    async def _native_calls(self, messages: list[dict[str, Any]], completion: Completion) -> None:
        messages.append(
            {
                "role": "assistant",
                "content": completion.content or None,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in completion.tool_calls
                ],
            }
        )
        for wire in completion.tool_calls:
            arguments, problem = calling.read_arguments(wire.arguments)
            if problem is not None:
                shown = f"the call failed: {problem}"
            elif not self.calls_left():
                shown = f"not run: the limit of {self.spec.max_calls} tool calls per task is reached; answer now"
            elif canonical(wire.name, arguments) in self.made:
                self.final_only = True
                shown = "not run again: you already called it with these arguments, its result is above; answer now"
            else:
                shown = await self.call(wire.name, arguments)
            messages.append({"role": "tool", "tool_call_id": wire.id, "content": shown})
