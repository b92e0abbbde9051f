"""The two messages that cross the bus: a Task to an agent, a Result back. Pure data, JSON on the wire.

Decoding is strict and total: every failure, whatever the bytes (bad JSON, wrong types, nesting deep enough to
exhaust the parser's recursion), is a :class:`MalformedMessage` that says what is wrong, because a consumer moves
malformed entries to the dead-letter stream with that reason instead of crashing. Documents nested deeper than
:data:`MAX_DEPTH` levels are refused both when sent and when read.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from podium.dataplane import codec

_INF = math.inf

# Nesting levels of one task or result document (the object itself is level 1). Far more than any real input
# needs, far less than what exhausts Python's recursion when such a document is decoded or encoded.
MAX_DEPTH = 100


class TaskKind(StrEnum):
    EXECUTE = "execute"
    BID = "bid"
    PROPOSE = "propose"
    REVIEW = "review"
    EXPLORE = "explore"
    EVALUATE = "evaluate"
    PLAN = "plan"
    SYNTHESIZE = "synthesize"
    VOTE = "vote"
    MESSAGE = "message"


# Result.error_type: failures that say nothing about the agent's health, so they do not move its circuit breaker.
THROTTLED = "throttled"  # the agent's upstream (a model API) answered 429, or 503 with Retry-After
INVALID_OUTPUT = "invalid_output"  # the answer does not honour the task's output_schema
BUDGET_SPENT = "budget_spent"  # the agent stopped its work (a tool loop) because the run's budget was spent
# The agent's upstream refused the request as made (a model API's 400: a prompt longer than the model's context, a
# parameter it does not take): the same request would be refused again, so the agent gets no retry.
REFUSED = "refused"
ERROR_TYPES = (THROTTLED, INVALID_OUTPUT, BUDGET_SPENT, REFUSED)
MAX_TRACEPARENT = 256  # characters; a W3C traceparent of version 00 has 55


class MalformedMessage(ValueError):
    """Bytes that are not a valid Task/Result; the message names the field and the problem."""


class PayloadTooLarge(ValueError):
    """A task whose encoded size exceeds the bus limit."""

    def __init__(self, task_id: str, size: int, limit: int) -> None:
        super().__init__(
            f"task {task_id!r} is {size} bytes encoded, over the bus limit of {limit} bytes; put large inputs in "
            f"shared state or object storage and pass a reference, or raise the limit with "
            f"Bus(max_payload_bytes=...)"
        )
        self.task_id = task_id
        self.size = size
        self.limit = limit


class PayloadTooDeep(ValueError):
    """A task or result nested deeper than :data:`MAX_DEPTH` levels."""

    def __init__(self, what: str, depth: int, limit: int = MAX_DEPTH) -> None:
        super().__init__(f"{what} nests {depth} levels deep, over the bus limit of {limit}; flatten it")
        self.depth = depth
        self.limit = limit


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests: a scalar is 0, ``[]`` is 1, ``{"a": [1]}`` is 2. Iterative: any depth is safe."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list | tuple))
    return deepest


def may_nest_deeper(raw: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """False when ``raw`` (JSON) certainly nests no deeper than ``limit``: it has too few brackets to. A C-speed
    count, so the exact check (:func:`json_depth`) runs only for documents with many brackets."""
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{") > limit
    return raw.count(b"[") + raw.count(b"{") > limit


def check_depth(raw: bytes | str, value: Any, what: str, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`PayloadTooDeep` when ``value`` (whose JSON is ``raw``) nests deeper than ``limit``."""
    if may_nest_deeper(raw, limit):
        depth = json_depth(value)
        if depth > limit:
            raise PayloadTooDeep(what, depth, limit)


def encode_json(value: Any) -> str:
    """Compact JSON; NaN/Infinity are refused because other languages' parsers reject them."""
    return codec.dumps_text(value)


def _decode_object(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        data = codec.loads(raw)
    except RecursionError:
        raise MalformedMessage(f"{what} nests too deep to decode (the bus limit is {MAX_DEPTH} levels)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"{what} is not valid JSON: {exc}") from exc
    except (TypeError, ValueError) as exc:  # not bytes nor str, or a number too long to convert
        raise MalformedMessage(f"{what} cannot be decoded: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedMessage(f"{what} must be a JSON object, got {type(data).__name__}")
    try:
        check_depth(raw, data, what)
    except PayloadTooDeep as exc:
        raise MalformedMessage(str(exc)) from None
    return data


def _str(data: dict[str, Any], key: str, what: str, *, required: bool = True, nonempty: bool = True) -> str:
    if key not in data:
        if required:
            raise MalformedMessage(f"{what} has no field {key!r}")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise MalformedMessage(f"{what} field {key!r} must be a string, got {type(value).__name__}")
    if nonempty and not value:
        raise MalformedMessage(f"{what} field {key!r} must not be empty")
    return value


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float: not a usable number either
        return False


def _number(data: dict[str, Any], key: str, what: str, default: float | None) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise MalformedMessage(f"{what} field {key!r} must be a finite number, got {value!r}")
    return float(value)


def _int(data: dict[str, Any], key: str, what: str, default: int, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MalformedMessage(f"{what} field {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _traceparent(value: Any) -> str:
    # Trace context is a courtesy: a bad one is dropped (the agent's span starts a trace of its own, as W3C Trace
    # Context asks), never a reason to dead-letter the task.
    return value if type(value) is str and len(value) <= MAX_TRACEPARENT else ""


# The fast paths of Task.from_json and Result.from_json: what the writers write, decoded and checked by msgspec in
# C (an order of magnitude faster than a dict checked in Python). A document they refuse, or one with enough brackets
# to nest too deep, takes the strict path, which accepts or rejects by the same rules and says what is wrong; so
# every field rule below is the strict path's too (tests/unit/dataplane/test_message_fast_path.py holds them equal).
_Name = Annotated[str, msgspec.Meta(min_length=1)]
_Attempt = Annotated[int, msgspec.Meta(ge=1)]


class _TaskWire(msgspec.Struct):
    id: _Name
    kind: _Name
    input: Any
    namespace: _Name
    agent: _Name
    orchestration: str = ""
    attempt: _Attempt = 1
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = None
    created_at: float | None = None
    meta: dict[str, Any] = {}
    output_schema: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    traceparent: Any = ""


class _ResultWire(msgspec.Struct):
    task_id: _Name
    ok: bool
    attempt: _Attempt = 1
    output: Any = None
    error: str | None = None
    quality: float | None = None
    tokens: Annotated[int, msgspec.Meta(ge=0)] = 0
    cost: float = 0.0
    duration_ms: float = 0.0
    agent: str = ""
    replica: str = ""
    finished_at: float | None = None
    error_type: str | None = None
    retry_after: Annotated[float, msgspec.Meta(ge=0)] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    state_updates: list[Any] | None = None
    messages: list[Any] | None = None


_TASK_WIRE = msgspec.json.Decoder(_TaskWire).decode
_RESULT_WIRE = msgspec.json.Decoder(_ResultWire).decode


def _typed(decode: Callable[[bytes | str], Any], raw: bytes | str) -> Any:
    """The fast path's decoding of ``raw``, or None when the strict path must judge it."""
    if may_nest_deeper(raw):
        return None
    try:
        return decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


@dataclass
class Task:
    id: str
    kind: str
    input: Any
    namespace: str
    agent: str
    orchestration: str = ""  # "<namespace>/<name>" or "" for a task outside any orchestration
    attempt: int = 1
    timeout_seconds: float | None = None
    created_at: float = field(default_factory=time.time)
    meta: dict[str, Any] = field(default_factory=dict)
    # The JSON Schema the output must satisfy (the engine's contract for the kind, see podium.engine.contracts):
    # it travels with the task so that an agent never needs the engine to know what to answer.
    output_schema: dict[str, Any] | None = None
    # What the agent is told besides its input: the run's shared state it reads, changes since its previous task,
    # messages of the types it subscribed to (format: podium.dataplane.collab). None: nothing to tell.
    context: dict[str, Any] | None = None
    # The W3C trace context of the engine's span for this attempt (docs/observability.md), so that the agent's span is
    # its child; "" when tracing is off. Sent only when set: untraced tasks keep their bytes.
    traceparent: str = ""

    def to_json(self) -> bytes:
        data = {
            "id": self.id,
            "kind": str(self.kind),
            "input": self.input,
            "namespace": self.namespace,
            "agent": self.agent,
            "orchestration": self.orchestration,
            "attempt": self.attempt,
            "created_at": self.created_at,
            "meta": self.meta,
        }
        # Fields that say nothing are left out (readers take a missing one as null), so that a task has no null
        # for the codec to look at twice (podium.dataplane.codec).
        if self.timeout_seconds is not None:
            data["timeout_seconds"] = self.timeout_seconds
        if self.output_schema is not None:
            data["output_schema"] = self.output_schema
        if self.context is not None:
            data["context"] = self.context
        if self.traceparent:
            data["traceparent"] = self.traceparent
        return codec.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Task:
        wire = _typed(_TASK_WIRE, raw)
        if wire is None:
            return cls._from_data(_decode_object(raw, "task"))
        return cls(
            wire.id,
            wire.kind,
            wire.input,
            wire.namespace,
            wire.agent,
            wire.orchestration,
            wire.attempt,
            wire.timeout_seconds,
            time.time() if wire.created_at is None else wire.created_at,
            wire.meta,
            wire.output_schema,
            wire.context,
            _traceparent(wire.traceparent),
        )

    @classmethod
    def _from_data(cls, data: dict[str, Any]) -> Task:
        what = "task"
        task_id = _str(data, "id", what)
        what = f"task {task_id!r}"
        if "input" not in data:
            raise MalformedMessage(f"{what} has no field 'input'")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise MalformedMessage(f"{what} field 'meta' must be an object, got {type(meta).__name__}")
        timeout = _number(data, "timeout_seconds", what, None)
        if timeout is not None and timeout <= 0:
            raise MalformedMessage(f"{what} field 'timeout_seconds' must be > 0, got {timeout}")
        created = _number(data, "created_at", what, None)
        schema = data.get("output_schema")
        if schema is not None and not isinstance(schema, dict):
            raise MalformedMessage(f"{what} field 'output_schema' must be an object, got {type(schema).__name__}")
        context = data.get("context")
        if context is not None and not isinstance(context, dict):
            raise MalformedMessage(f"{what} field 'context' must be an object, got {type(context).__name__}")
        return cls(
            id=task_id,
            kind=_str(data, "kind", what),
            input=data["input"],
            namespace=_str(data, "namespace", what),
            agent=_str(data, "agent", what),
            orchestration=_str(data, "orchestration", what, required=False, nonempty=False),
            attempt=_int(data, "attempt", what, 1, 1),
            timeout_seconds=timeout,
            created_at=time.time() if created is None else created,
            meta=meta,
            output_schema=schema,
            context=context,
            traceparent=_traceparent(data.get("traceparent")),
        )


@dataclass
class Result:
    task_id: str
    attempt: int
    ok: bool
    output: Any = None
    error: str | None = None
    quality: float | None = None
    tokens: int = 0
    cost: float = 0.0
    duration_ms: float = 0.0
    agent: str = ""
    replica: str = ""
    finished_at: float = field(default_factory=time.time)
    # Why a failed attempt failed, when that changes what the engine does: see ERROR_TYPES.
    error_type: str | None = None
    retry_after: float | None = None  # seconds the agent's upstream asked to wait (a 429's Retry-After)
    # The tool calls the agent made, in order, as podium.dataplane.toolcalls.ToolCall.to_wire() dicts; also on
    # failure (the calls were made and their tokens spent).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # What the answer asks the engine to do besides returning its output (format: podium.dataplane.collab): writes
    # to the run's shared state and messages to publish. The engine applies them; agents cannot touch run keys.
    state_updates: list[dict[str, Any]] | None = None
    messages: list[dict[str, Any]] | None = None

    def to_json(self) -> bytes:
        data = self.to_dict()
        # As Task.to_json: no nulls where nothing is said (an ok result has no error, an unscored one no quality).
        if self.error is None:
            del data["error"]
        if self.quality is None:
            del data["quality"]
        return codec.dumps(data)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "task_id": self.task_id,
            "attempt": self.attempt,
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "quality": self.quality,
            "tokens": self.tokens,
            "cost": self.cost,
            "duration_ms": self.duration_ms,
            "agent": self.agent,
            "replica": self.replica,
            "finished_at": self.finished_at,
        }
        if self.error_type is not None:
            data["error_type"] = self.error_type
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        if self.tool_calls:
            data["tool_calls"] = self.tool_calls
        if self.state_updates:
            data["state_updates"] = self.state_updates
        if self.messages:
            data["messages"] = self.messages
        return data

    @classmethod
    def from_json(cls, raw: bytes | str) -> Result:
        wire = _typed(_RESULT_WIRE, raw)
        if wire is None:
            return cls.from_dict(_decode_object(raw, "result"))
        return cls(
            wire.task_id,
            wire.attempt,
            wire.ok,
            wire.output,
            wire.error,
            wire.quality,
            wire.tokens,
            wire.cost or 0.0,  # as the strict path: -0.0 is 0.0
            wire.duration_ms or 0.0,
            wire.agent,
            wire.replica,
            time.time() if wire.finished_at is None else wire.finished_at,
            wire.error_type,
            wire.retry_after,
            wire.tool_calls or [],
            wire.state_updates,
            wire.messages,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        # Fast path for what Result.to_json writes (see Task.from_json); everything else is checked strictly.
        get = data.get
        task_id, attempt, ok, error, quality = get("task_id"), get("attempt"), get("ok"), get("error"), get("quality")
        tokens, cost, duration, agent, replica = (
            get("tokens"),
            get("cost"),
            get("duration_ms"),
            get("agent"),
            get("replica"),
        )
        finished, error_type, retry_after = get("finished_at"), get("error_type"), get("retry_after")
        calls = get("tool_calls")
        updates, messages = get("state_updates"), get("messages")
        if (
            type(task_id) is str
            and task_id
            and type(attempt) is int
            and attempt >= 1
            and type(ok) is bool
            and (error is None or type(error) is str)
            and (quality is None or (type(quality) is float and -_INF < quality < _INF))
            and type(tokens) is int
            and tokens >= 0
            and type(cost) is float
            and -_INF < cost < _INF
            and type(duration) is float
            and -_INF < duration < _INF
            and type(agent) is str
            and type(replica) is str
            and type(finished) is float
            and -_INF < finished < _INF
            and (error_type is None or type(error_type) is str)
            and (retry_after is None or (type(retry_after) is float and 0.0 <= retry_after < _INF))
            and calls is None
            and (updates is None or type(updates) is list)
            and (messages is None or type(messages) is list)
        ):
            return cls(
                task_id,
                attempt,
                ok,
                get("output"),
                error,
                quality,
                tokens,
                cost,
                duration,
                agent,
                replica,
                finished,
                error_type,
                retry_after,
                state_updates=updates,
                messages=messages,
            )
        return cls._from_data(data)

    @classmethod
    def _from_data(cls, data: dict[str, Any]) -> Result:
        what = "result"
        task_id = _str(data, "task_id", what)
        what = f"result of task {task_id!r}"
        ok = data.get("ok")
        if not isinstance(ok, bool):
            raise MalformedMessage(f"{what} field 'ok' must be true or false, got {ok!r}")
        error = data.get("error")
        if error is not None and not isinstance(error, str):
            raise MalformedMessage(f"{what} field 'error' must be a string or null, got {type(error).__name__}")
        finished = _number(data, "finished_at", what, None)
        error_type = data.get("error_type")
        if error_type is not None and not isinstance(error_type, str):
            raise MalformedMessage(f"{what} field 'error_type' must be a string or null, got {error_type!r}")
        retry_after = _number(data, "retry_after", what, None)
        if retry_after is not None and retry_after < 0:
            raise MalformedMessage(f"{what} field 'retry_after' must be >= 0, got {retry_after}")
        calls = data.get("tool_calls") or []
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise MalformedMessage(f"{what} field 'tool_calls' must be a list of objects")
        for name in ("state_updates", "messages"):
            if data.get(name) is not None and not isinstance(data[name], list):
                raise MalformedMessage(f"{what} field {name!r} must be a list, got {type(data[name]).__name__}")
        return cls(
            task_id=task_id,
            attempt=_int(data, "attempt", what, 1, 1),
            ok=ok,
            output=data.get("output"),
            error=error,
            quality=_number(data, "quality", what, None),
            tokens=_int(data, "tokens", what, 0, 0),
            cost=_number(data, "cost", what, 0.0) or 0.0,
            duration_ms=_number(data, "duration_ms", what, 0.0) or 0.0,
            agent=_str(data, "agent", what, required=False, nonempty=False),
            replica=_str(data, "replica", what, required=False, nonempty=False),
            finished_at=time.time() if finished is None else finished,
            error_type=error_type,
            retry_after=retry_after,
            tool_calls=calls,
            state_updates=data.get("state_updates"),
            messages=data.get("messages"),
        )
