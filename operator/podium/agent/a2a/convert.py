"""What crosses between a Podium task and an A2A message, both ways. Pure functions over the SDK's types: the
server (an A2A message in, a Podium result out) and the `a2a` backend (a Podium task out, an A2A answer in) read and
write the same shapes, so a Podium Agent calling a Podium Agent over A2A keeps the task's kind and the result's
quality, tokens and cost.

Shapes:
- A string is a text part; any other JSON value is a data part (`application/json`). Protobuf keeps every number
  as a double, so whole numbers are read back as ints.
- Podium's own fields travel in metadata under ``podium``: on a message ``kind``, ``taskId``, ``orchestration``,
  ``attempt`` and ``traceparent`` (W3C: the remote agent's work joins the caller's trace); on an answer's
  artifact ``taskId``, ``agent``, ``replica``, ``quality``, ``tokens``, ``cost``, ``durationMs``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from a2a.types import Artifact, Message, Part, Role, StreamResponse, Task, TaskState
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

JSON_MEDIA_TYPE = "application/json"
TEXT_MEDIA_TYPE = "text/plain"
METADATA_KEY = "podium"
DEFAULT_KIND = "execute"
# Kinds an A2A message may ask for: those a Podium agent answers (podium.dataplane.messages.TaskKind).
KINDS = frozenset({"execute", "bid", "propose", "review", "explore", "evaluate", "plan", "synthesize"})

TERMINAL_OK = TaskState.TASK_STATE_COMPLETED
# States in which a remote task will not produce a result for a one-shot Podium task.
UNFINISHED: dict[int, str] = {
    TaskState.TASK_STATE_FAILED: "failed",
    TaskState.TASK_STATE_REJECTED: "rejected",
    TaskState.TASK_STATE_CANCELED: "canceled",
    TaskState.TASK_STATE_INPUT_REQUIRED: "asks for more input, which a Podium task cannot give",
    TaskState.TASK_STATE_AUTH_REQUIRED: "asks for authentication, which a Podium task cannot give",
}


class NotUnderstood(ValueError):
    """An A2A message a Podium agent cannot turn into a task; the message says what to send instead."""


def plain(value: Any) -> Any:
    """JSON from protobuf (``MessageToDict``) with whole-number doubles back to ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _json_text(text: str) -> Any:
    """A text part marked application/json: its JSON, or the text itself when it is not JSON after all."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def part_value(part: Part) -> Any:
    """A part's content as JSON: a data part's data, a text part's text (parsed when marked application/json)."""
    if part.HasField("data"):
        return plain(MessageToDict(part.data))
    if part.HasField("text"):
        return _json_text(part.text) if part.media_type == JSON_MEDIA_TYPE else part.text
    what = "a file (raw bytes)" if part.HasField("raw") else "a file URL" if part.HasField("url") else "an empty part"
    raise NotUnderstood(f"a Podium agent takes text and data parts, not {what}: send the content as text or data")


def parts_value(parts: Sequence[Part]) -> Any:
    """All parts as one value: one part is its value; several text parts are their text joined by newlines;
    a mix is the list of values."""
    if not parts:
        raise NotUnderstood("the message has no parts: send the task's input as a text or data part")
    values = [part_value(p) for p in parts]
    if len(values) == 1:
        return values[0]
    if all(p.HasField("text") and p.media_type != JSON_MEDIA_TYPE for p in parts):
        return "\n".join(values)
    return values


def value_parts(value: Any, *, as_data: bool = True) -> list[Part]:
    """A JSON value as parts: a string as text; anything else as data, or as JSON text where data is not taken."""
    if isinstance(value, str):
        return [Part(text=value, media_type=TEXT_MEDIA_TYPE)]
    if as_data:
        return [Part(data=ParseDict(value, struct_pb2.Value()), media_type=JSON_MEDIA_TYPE)]
    return [Part(text=json.dumps(value, ensure_ascii=False), media_type=JSON_MEDIA_TYPE)]


def podium_metadata(metadata: Any) -> dict[str, Any]:
    """The ``podium`` entry of a protobuf metadata Struct (or a plain dict), {} when absent or not an object."""
    # A protobuf Struct is a Mapping too (of Struct values): only a real dict is taken as it is.
    data = dict(metadata) if isinstance(metadata, dict) else plain(MessageToDict(metadata))
    found = data.get(METADATA_KEY)
    return found if isinstance(found, dict) else {}


@dataclass(frozen=True)
class Request:
    """What an A2A message asks a Podium agent to do."""

    kind: str
    input: Any
    traceparent: str = ""  # the caller's span, when it sent one (checked where the task is read, like any task's)


def request_of(message: Message) -> Request:
    """The task kind (``execute`` unless the metadata's ``podium.kind`` names another), the input, and the caller's
    trace context."""
    meta = podium_metadata(message.metadata)
    kind = meta.get("kind", DEFAULT_KIND)
    if kind not in KINDS:
        raise NotUnderstood(f"podium.kind {kind!r} is not a task kind; use one of {', '.join(sorted(KINDS))}")
    parent = meta.get("traceparent")
    traceparent = parent if isinstance(parent, str) else ""
    return Request(kind=str(kind), input=parts_value(message.parts), traceparent=traceparent)


def outgoing_message(
    *,
    kind: str,
    value: Any,
    task_id: str,
    orchestration: str,
    attempt: int,
    accepts_json: bool,
    traceparent: str = "",
) -> Message:
    """The message a Podium task becomes on its way to a remote A2A agent."""
    meta: dict[str, Any] = {"kind": kind, "taskId": task_id, "orchestration": orchestration, "attempt": attempt}
    if traceparent:
        meta["traceparent"] = traceparent
    return Message(
        role=Role.ROLE_USER,
        message_id=str(uuid.uuid4()),
        parts=value_parts(value, as_data=accepts_json),
        metadata={METADATA_KEY: meta},
    )


def result_metadata(result: Mapping[str, Any]) -> dict[str, Any]:
    """A Podium result's accounting, for the metadata of the artifact that carries its output."""
    fields = {
        "taskId": result.get("task_id"),
        "agent": result.get("agent"),
        "replica": result.get("replica"),
        "quality": result.get("quality"),
        "tokens": result.get("tokens"),
        "cost": result.get("cost"),
        "durationMs": result.get("duration_ms"),
    }
    return {METADATA_KEY: {k: v for k, v in fields.items() if v is not None}}


@dataclass(frozen=True)
class Answer:
    """A remote agent's answer to one task: the output and the accounting a Podium server sent along."""

    output: Any
    quality: float | None = None
    tokens: int = 0
    cost: float | None = None


class Unanswered(Exception):
    """The remote agent ended without a result; the message is its own, prefixed with the state."""


def _message_text(message: Message) -> str:
    texts = [p.text for p in message.parts if p.HasField("text")]
    return " ".join(t.strip() for t in texts if t.strip())


def _accounting(output: Any, meta: Mapping[str, Any]) -> Answer:
    quality = meta.get("quality")
    tokens = meta.get("tokens")
    cost = meta.get("cost")
    return Answer(
        output=output,
        quality=float(quality) if isinstance(quality, int | float) and 0 <= quality <= 1 else None,
        tokens=int(tokens) if isinstance(tokens, int | float) and tokens >= 0 else 0,
        cost=float(cost) if isinstance(cost, int | float) and cost >= 0 else None,
    )


def artifacts_answer(artifacts: Sequence[Artifact]) -> Answer:
    """The output of a completed task: one artifact's parts as one value, several artifacts as a list."""
    if not artifacts:
        raise Unanswered("completed without an artifact: the remote agent returned no output")
    outputs = [parts_value(a.parts) for a in artifacts]
    meta = podium_metadata(artifacts[-1].metadata)
    return _accounting(outputs[0] if len(outputs) == 1 else outputs, meta)


class Tracker:
    """Folds the events of one send (a streamed sequence, or the single response of a blocking send) into the
    remote task's final state, then into an :class:`Answer` or :class:`Unanswered`."""

    def __init__(self) -> None:
        self.reply: Message | None = None
        self.state: int = TaskState.TASK_STATE_UNSPECIFIED
        self.status_message: Message | None = None
        self.artifacts: dict[str, Artifact] = {}  # by artifact id, in arrival order
        self.task_id = ""

    def add(self, event: StreamResponse) -> None:
        if event.HasField("message"):
            self.reply = event.message
        elif event.HasField("task"):
            self._task(event.task)
        elif event.HasField("status_update"):
            self._status(event.status_update.status)
        elif event.HasField("artifact_update"):
            update = event.artifact_update
            previous = self.artifacts.get(update.artifact.artifact_id)
            if update.append and previous is not None:
                previous.parts.extend(update.artifact.parts)
            else:
                merged = Artifact()
                merged.CopyFrom(update.artifact)
                self.artifacts[update.artifact.artifact_id] = merged

    def _task(self, task: Task) -> None:
        self.task_id = task.id
        self._status(task.status)
        for artifact in task.artifacts:
            copy = Artifact()
            copy.CopyFrom(artifact)
            self.artifacts[artifact.artifact_id] = copy

    def _status(self, status: Any) -> None:
        self.state = status.state
        self.status_message = status.message if status.HasField("message") else None

    def answer(self) -> Answer:
        if self.reply is not None:
            return _accounting(parts_value(self.reply.parts), podium_metadata(self.reply.metadata))
        if self.state == TERMINAL_OK:
            return artifacts_answer(list(self.artifacts.values()))
        why = _message_text(self.status_message) if self.status_message is not None else ""
        if self.state in UNFINISHED:
            raise Unanswered(f"task {UNFINISHED[self.state]}" + (f": {why}" if why else ""))
        name = TaskState.Name(self.state) if self.state else "no state"
        raise Unanswered(f"the answer ended before the task did (last state {name})" + (f": {why}" if why else ""))
