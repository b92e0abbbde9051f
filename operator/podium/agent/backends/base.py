"""The one interface every backend implements, and the conventions they share for reading answers."""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from podium.dataplane.toolcalls import ToolCall

if TYPE_CHECKING:
    from podium.api.agent import AgentSpec

# Keys a backend may use to report more than the output itself: {"output": ..., "quality": 0.8, "tokens": 12},
# and to ask the engine to write the run's shared state and publish messages (podium.dataplane.collab):
# {"output": ..., "stateUpdates": [{"key": "plan", "value": {...}}], "messages": [{"type": "finding", ...}]}.
ENVELOPE_KEYS = frozenset({"output", "quality", "tokens", "cost", "stateUpdates", "messages"})

# When the task being run must be finished, on the event loop's clock (set by the runtime around each task): a
# backend that could wait (a 429's Retry-After) uses it to decide whether waiting still fits.
TASK_DEADLINE: ContextVar[float | None] = ContextVar("podium_task_deadline", default=None)
# Where a backend records the tool calls it makes during the task being run (set by the runtime around each task):
# the runtime reports them with the result even when the task fails or times out mid-loop.
TASK_TOOL_CALLS: ContextVar[list[ToolCall] | None] = ContextVar("podium_task_tool_calls", default=None)


class TaskLike(Protocol):
    """What a backend reads from a task (``podium.dataplane.messages.Task`` satisfies it)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def input(self) -> Any: ...
    @property
    def namespace(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def orchestration(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def meta(self) -> dict[str, Any]: ...
    @property
    def output_schema(self) -> dict[str, Any] | None: ...
    @property
    def context(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class BackendOutput:
    output: Any
    quality: float | None = None
    tokens: int = 0
    cost: float | None = None  # None: the runtime prices the task from the Agent's pricing
    # A model's usage split as its API reports it (tokens is their sum), and how long its first token took.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_seconds: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # the tool calls the task made, in order
    # The answer's effects as it gave them (checked and completed by the runtime, podium.dataplane.collab).
    state_updates: Any = None
    messages: Any = None


class BackendError(Exception):
    """The backend ran and failed; the message is what the orchestration sees as the task's error.

    ``spent`` is what the failed work used (tokens of the model calls made before failing): it is still counted
    against the run's budget and priced.
    """

    def __init__(self, message: str, *, spent: BackendOutput | None = None) -> None:
        super().__init__(message)
        self.spent = spent


class Throttled(BackendError):
    """The backend's upstream asked us to slow down (429, or 503 with Retry-After) and waiting here did not fit
    in the task's time. The engine waits ``retry_after`` before the next attempt and leaves the breaker alone."""

    def __init__(self, message: str, retry_after: float | None, *, spent: BackendOutput | None = None) -> None:
        super().__init__(message, spent=spent)
        self.retry_after = retry_after


class Refused(BackendError):
    """The backend's upstream refused the request as made (a 400: a prompt longer than the model's context, a feature
    it lacks); asked again the same way it refuses again. The engine does not retry it on this agent and leaves
    the breaker alone."""


class Unreachable(BackendError):
    """The backend's upstream did not answer at all (connection refused or cut, DNS, a 5xx from a proxy in front):
    the runtime probes it at once and takes no tasks until it answers (:class:`Probed`)."""


class InvalidOutput(BackendError):
    """The answer does not honour the task's ``output_schema`` (the message names the field)."""


class BudgetSpent(BackendError):
    """The backend stopped its work (the llm tool loop, between two model calls) because it had spent what the
    task's run had left (``podium.dataplane.allowance``); ``spent`` says how much."""


class Backend(Protocol):
    name: str
    timeout_seconds: int | None  # the backend's own cap on a task, if its spec sets one

    async def start(self) -> None:
        """Prepare (import, open sessions); raise BackendError if the backend can never work."""

    async def run(self, task: TaskLike) -> BackendOutput:
        """Do the task; raise for errors. Cancellation (timeout, shutdown) must stop the work."""

    def handles(self, kind: str) -> bool:
        """False: the runtime answers this kind itself (see podium.agent.defaults)."""

    async def close(self) -> None: ...


@runtime_checkable
class Probed(Protocol):
    """A backend with an upstream it can ask whether it takes requests (the llm backend's model server). While it
    does not, its replica fails /readyz, takes no tasks, and says why in its heartbeat."""

    async def probe(self) -> str | None:
        """Why the upstream cannot take requests now, or None when it answers. Never raises."""


def task_document(task: TaskLike) -> dict[str, Any]:
    """The task as the JSON that http backends receive; ``output_schema`` is what the answer must honour (null:
    anything goes)."""
    return {
        "id": task.id,
        "kind": str(task.kind),
        "input": task.input,
        "namespace": task.namespace,
        "agent": task.agent,
        "orchestration": task.orchestration,
        "attempt": task.attempt,
        "meta": task.meta,
        "output_schema": task.output_schema,
        "context": task.context,
    }


def _quality(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BackendError(f"quality must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise BackendError(f"quality must be in [0, 1], got {value!r}")
    return float(value)


def from_value(value: Any) -> BackendOutput:
    """Read an answer: a dict made only of envelope keys (with ``output``) is unwrapped; anything else is output."""
    if isinstance(value, BackendOutput):
        return value
    if isinstance(value, dict) and "output" in value and set(value) <= ENVELOPE_KEYS:
        tokens = value.get("tokens") or 0
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise BackendError(f"tokens must be a non-negative integer, got {tokens!r}")
        cost = value.get("cost")
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0):
            raise BackendError(f"cost must be a non-negative number, got {cost!r}")
        return BackendOutput(
            value["output"],
            _quality(value.get("quality")),
            tokens,
            cost,
            state_updates=value.get("stateUpdates"),
            messages=value.get("messages"),
        )
    return BackendOutput(value)


def parse_text(text: str) -> Any:
    """JSON if it is JSON, else the text itself (stripped): how command and llm answers are read."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return stripped


def tail(text: str, limit: int = 2000) -> str:
    """The end of a long message: the last lines of stderr are where programs say what went wrong."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def build_backend(spec: AgentSpec) -> Backend:
    """The backend the spec names. Imports lazily so an agent only loads what it uses."""
    kind = spec.backend.type
    if kind == "command":
        from podium.agent.backends.command import CommandRunner

        assert spec.backend.command is not None
        return CommandRunner(spec.backend.command)
    if kind == "python":
        from podium.agent.backends.python import PythonRunner

        assert spec.backend.python is not None
        return PythonRunner(spec.backend.python)
    if kind == "llm":
        from podium.agent.backends.llm import LLMRunner
        from podium.agent.pricing import usage_cost

        assert spec.backend.llm is not None
        return LLMRunner(
            spec.backend.llm,
            tools=spec.tools,
            writes=spec.blackboard.write if spec.blackboard else (),
            price=lambda out: usage_cost(spec, out),
        )
    if kind == "a2a":
        from podium.agent.backends.a2a import A2ARunner

        assert spec.backend.a2a is not None
        return A2ARunner(spec.backend.a2a)
    from podium.agent.backends.http import HTTPRunner

    assert spec.backend.http is not None
    return HTTPRunner(spec.backend.http)
