"""What the ``llm`` backend says to the model and how it reads the answer: pure functions, no I/O.

The prompt is the task's content as readable text (not the engine's wrapper JSON, which a small model echoes
back), then the instruction and the answer's fields, both generated from the task's output schema: the schema's
``description`` is the instruction, and every field is listed with its type, bounds and description. The same
schema constrains the model's decoding and checks its answer, so the prompt cannot ask for something else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from podium.api.collab import STATE_KEY_PATTERN
from podium.api.json_schema import first_error

# How much of a rejected answer goes back to the model with the re-ask: enough to recognise, not to re-read.
ECHO_CHARS = 600
PLACEHOLDER = re.compile(r"^<[^<>]*>$")  # a string like "<text>": a form copied instead of answered
FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?```\s*$", re.DOTALL)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class AnswerError(ValueError):
    """The model's answer cannot be read as JSON; the message says where it breaks."""


# ------------------------------------------------------------------------------------------------ answers
def strip_fences(text: str) -> str:
    """The content of a Markdown code block (```json ... ```) that makes up the whole answer; else the text."""
    match = FENCE.match(text)
    return match.group(1).strip() if match else text.strip()


def read_json(text: str) -> Any:
    """The JSON value of an answer: fences stripped; prose around one JSON object is tolerated."""
    body = strip_fences(text)
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        first, last = body.find("{"), body.rfind("}")
        if 0 <= first < last:
            try:
                return json.loads(body[first : last + 1])
            except json.JSONDecodeError:
                pass
        if not body:
            raise AnswerError("the answer is empty") from None
        raise AnswerError(f"the answer is not valid JSON: {exc}") from None


def read_text(text: str) -> Any:
    """A free-form answer (no schema): JSON when it is JSON (fenced or not), else the text itself."""
    body = strip_fences(text)
    if body[:1] in ("{", "["):
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            pass
    return text.strip()


def copied_placeholder(value: Any, path: str = "") -> str | None:
    """The path of the first string in ``value`` that is a placeholder (``"<text, ...>"``) rather than content:
    small models copy a form they have seen instead of filling it in."""
    if isinstance(value, str):
        return path or "(root)" if PLACEHOLDER.match(value.strip()) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = copied_placeholder(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip("."))
        if found:
            return found
    return None


def answer_problem(value: Any, schema: dict[str, Any], asked: dict[str, Any] | None = None) -> str | None:
    """What is wrong with an answer's value: where it breaks the schema, or a placeholder or field description
    copied from the form. ``asked``: the schema the model was shown (bounds fitted to its token limit)."""
    problem = first_error(schema, value)
    if problem is None and (copied := copied_placeholder(value)) is not None:
        problem = f"field {copied!r} repeats the form's placeholder instead of answering: write the content itself"
    if problem is None and (copied := copied_description(value, asked or schema)) is not None:
        problem = f"field {copied!r} repeats the form's description instead of answering: write the content itself"
    return problem


def _said(text: str) -> str:
    """Text as compared for copying: lower case, words only."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def copied_description(value: Any, schema: dict[str, Any], path: str = "") -> str | None:
    """The path of the first string in ``value`` that repeats what the form says about its field (its description,
    its type and bounds in words, or the whole line: ``"the part of team research, text of at most 300
    characters"``) instead of answering: a small model copies the field list it was shown. ``schema`` is the one the
    model was shown."""
    if isinstance(value, str):
        note, kind = str(schema.get("description") or ""), kind_of(schema)
        forms = {_said(kind)} | ({_said(note), _said(f"{note}, {kind}")} if note else set())
        return (path or "(root)") if _said(value) in forms else None
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        children = [(f"{path}.{k}".lstrip("."), v, schema["properties"].get(k)) for k, v in value.items()]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        children = [(f"{path}[{i}]", v, schema["items"]) for i, v in enumerate(value)]
    else:
        return None
    for where, item, sub in children:
        found = copied_description(item, sub, where) if isinstance(sub, dict) else None
        if found:
            return found
    return None


# ------------------------------------------------------------------------------------------------ content
def label(key: str) -> str:
    """``bestScore`` / ``best_score`` -> ``Best score``."""
    words = _CAMEL.sub(" ", key).replace("_", " ").replace("-", " ").strip().lower()
    return words[:1].upper() + words[1:]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def render(value: Any, indent: str = "") -> str:
    """A JSON value as readable text: ``Label: value`` lines, numbered lists, nesting by indentation."""
    if isinstance(value, str):
        return value.strip().replace("\n", "\n" + indent)
    if _scalar(value):
        return json.dumps(value)
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _empty(item):
                continue
            if _scalar(item) and "\n" not in str(item):
                lines.append(f"{indent}{label(str(key))}: {render(item)}")
            else:
                lines.append(f"{indent}{label(str(key))}:")
                lines.append(_nested(item, indent + "  "))
        return "\n".join(lines)
    for number, item in enumerate(value, 1):
        if _scalar(item) or isinstance(item, str):
            lines.append(f"{indent}{number}. {render(item, indent + '   ')}")
        else:
            lines.append(f"{indent}{number}.")
            lines.append(render(item, indent + "   "))
    return "\n".join(lines)


def _nested(value: Any, indent: str) -> str:
    return indent + render(value, indent) if isinstance(value, str) else render(value, indent)


# ------------------------------------------------------------------------------------------------ token fit
# Characters per token of an answer at its worst: a small model that loops ("1.1.1.1...") spends a token on one
# or two characters, where prose runs near four.
CHARS_PER_TOKEN = 2
NUMBER_CHARS = 16


def _sizes(schema: dict[str, Any]) -> tuple[float, float]:
    """(characters of structure, characters of free text) of the largest answer the schema allows."""
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return float(max(len(json.dumps(v)) for v in values)), 0.0
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "string":
        if "maxLength" not in schema or "pattern" in schema:
            return float(schema.get("maxLength", 64)) + 2, 0.0
        return 2.0, float(schema["maxLength"])
    if kind in ("integer", "number", "boolean"):
        return float(NUMBER_CHARS), 0.0
    if kind == "array" and isinstance(schema.get("items"), dict):
        count = float(schema.get("maxItems", 8))
        structure, text = _sizes(schema["items"])
        return 2 + count * (structure + 2), count * text
    if kind == "object":
        structure, text = 2.0, 0.0
        for name, sub in schema.get("properties", {}).items():
            inner, words = _sizes(sub)
            structure, text = structure + len(name) + 4 + inner, text + words
        return structure, text
    return 64.0, 0.0


def fit_to_tokens(schema: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
    """The schema with its text bounds shrunk so that its largest answer fits in ``max_tokens`` (the model is cut
    there otherwise, mid-JSON). A shrunk schema allows a subset of the original's answers, so an answer to it
    honours the contract too. Unchanged when it fits or there is no limit."""
    if not max_tokens:
        return schema
    structure, text = _sizes(schema)
    budget = max_tokens * CHARS_PER_TOKEN * 0.9  # some room for the whitespace a grammar allows
    if structure + text <= budget or text == 0:
        return schema
    factor = max(0.05, (budget - structure) / text)
    return _scaled(schema, factor)


def _scaled(schema: Any, factor: float) -> Any:
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _scaled(sub, factor) for name, sub in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _scaled(out["items"], factor)
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(out.get(key), list):
            out[key] = [_scaled(sub, factor) for sub in out[key]]
    if out.get("type") == "string" and "maxLength" in out and "pattern" not in out:
        out["maxLength"] = max(int(out.get("minLength", 1)), int(out["maxLength"] * factor))
    return out


# ------------------------------------------------------------------------------------------------ schema
def _count(schema: dict[str, Any]) -> str:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and low == high:
        return f"exactly {low}"
    if low and high is not None:
        return f"{low} to {high}"
    if high is not None:
        return f"at most {high}"
    return f"at least {low}" if low else ""


def _range(schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    return f" of at most {high}" if high is not None else ""


_ARTICLES = {"integer": "an integer", "number": "a number", "boolean": "true or false", "string": "text"}
_PLURALS = {"integer": "integers", "number": "numbers", "boolean": "true/false values", "string": "texts"}


def kind_of(schema: dict[str, Any], plural: bool = False) -> str:
    """A value's type and bounds in words: ``an integer from 0 to 10``, ``text of at most 200 characters``."""
    if "enum" in schema:
        return ("" if plural else "one ") + "of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind in ("integer", "number"):
        return (_PLURALS if plural else _ARTICLES)[kind] + _range(schema)
    if kind == "string":
        # A pattern (enforced by the grammar) bounds the text already; its length bound would be copied as content.
        bound = (
            f" of at most {schema['maxLength']} characters" if "maxLength" in schema and "pattern" not in schema else ""
        )
        return (_PLURALS if plural else _ARTICLES)[kind] + bound
    if kind == "boolean":
        return (_PLURALS if plural else _ARTICLES)[kind]
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        count = _count(schema)
        return f"a list of {count + ' ' if count else ''}{kind_of(items, plural=True) if items else 'values'}"
    if kind == "object":
        return "objects, each with:" if plural else "an object with:"
    return "any JSON value"


def fields(schema: dict[str, Any], indent: str = "") -> list[str]:
    """One line per field, nested fields indented: ``"score": your score, an integer from 0 to 10``."""
    lines = []
    for name, sub in schema.get("properties", {}).items():
        note = f"{sub['description']}, " if sub.get("description") else ""
        lines.append(f"{indent}{json.dumps(name)}: {note}{kind_of(sub)}")
        inner = sub.get("items") if sub.get("type") == "array" else sub
        if isinstance(inner, dict) and inner.get("properties"):
            lines.extend(fields(inner, indent + "  "))
    return lines


def with_writes(schema: dict[str, Any] | None, keys: Sequence[str]) -> dict[str, Any] | None:
    """The answer together with the shared-state writes the agent may make (``{output, stateUpdates}``, the
    envelope the runtime reads), when it names keys to write; else the schema unchanged."""
    if not keys:
        return schema
    output = dict(schema) if schema is not None else {"type": "string"}
    what = output.pop("description", None)
    key = {"type": "string", "pattern": STATE_KEY_PATTERN} if "*" in keys else {"enum": list(dict.fromkeys(keys))}
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {
            "output": {**output, "description": "your answer"},
            "stateUpdates": {
                "type": "array",
                "description": "values you write to the run's shared state, by key ([] to write none)",
                "maxItems": 64 if "*" in keys else len(key["enum"]),
                "items": {
                    "type": "object",
                    "properties": {"key": key, "value": {"description": "the new value"}},
                    "required": ["key", "value"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["output", "stateUpdates"],
        "additionalProperties": False,
    }
    return {"description": what, **wrapped} if what else wrapped


def instruction(schema: dict[str, Any]) -> str:
    """What to do and in which shape, from the schema alone: its description, then its fields in words (a
    template with placeholders would be copied by a small model instead of filled in)."""
    items = schema.get("items") if schema.get("type") == "array" else None
    if schema.get("properties"):
        shape = "an object with these fields:\n" + "\n".join(fields(schema))
    elif isinstance(items, dict) and items.get("properties"):
        shape = kind_of(schema) + "\n" + "\n".join(fields(items))
    else:
        shape = kind_of(schema)
    what = str(schema.get("description", "")).strip()
    return (what + "\n" if what else "") + "Answer with JSON only: " + shape


# How much of one shared value or message payload the prompt shows (a model's context is small; the task's
# context keeps all of it).
CONTEXT_VALUE_CHARS = 600


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= CONTEXT_VALUE_CHARS else text[:CONTEXT_VALUE_CHARS] + "..."


def context_text(context: dict[str, Any] | None) -> str:
    """The task's context (podium.dataplane.collab) as text: the shared state it reads, what changed since its
    previous task, and its messages."""
    if not context:
        return ""
    parts = []
    board = context.get("blackboard") or {}
    values = board.get("values") or {}
    if values:
        lines = [f"- {k}: {_short(v.get('value'))}" for k, v in values.items() if isinstance(v, dict)]
        parts.append("Shared state:\n" + "\n".join(lines))
    changes = board.get("changes") or []
    if changes:
        lines = [f"- {c.get('key')}: {c.get('kind')} by {c.get('writer')}, now {_short(c.get('new'))}" for c in changes]
        parts.append("Changed since your last task:\n" + "\n".join(lines))
    messages = context.get("messages") or []
    if messages:
        lines = [f"- {m.get('type')} from {m.get('sender')}: {_short(m.get('payload'))}" for m in messages]
        parts.append("Messages for you:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def content(task_input: Any) -> str:
    """The task's content as the model reads it (and as the agent's memory keeps it)."""
    return render(task_input) if not _empty(task_input) else ""


def build_messages(
    system_prompt: str | None,
    task_input: Any,
    schema: dict[str, Any] | None,
    *,
    history: Sequence[tuple[str, str]] = (),
    tools: str | None = None,
    context: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """System prompt (and the tools' part, if any), then earlier turns the agent remembers as the user and
    assistant turns they were, then the task's content as text with its context (shared state, changes,
    messages) and (with a schema) the instruction and fields."""
    system = "\n\n".join(p for p in (system_prompt, tools) if p)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for asked, answered in history:
        messages.append({"role": "user", "content": asked or "(no input)"})
        messages.append({"role": "assistant", "content": answered})
    body = "\n\n".join(p for p in (content(task_input), context_text(context)) if p)
    parts = [body, instruction(schema)] if schema is not None else [body]
    messages.append({"role": "user", "content": "\n\n".join(p for p in parts if p) or "(no input)"})
    return messages


def reask(answer: str, problem: str) -> list[dict[str, str]]:
    """The turn that shows the model its rejected answer and why, and asks once more."""
    shown = answer if len(answer) <= ECHO_CHARS else answer[:ECHO_CHARS] + "..."
    return [
        {"role": "assistant", "content": shown},
        {
            "role": "user",
            "content": f"That answer was rejected: {problem}. Answer again with JSON only, in the form given.",
        },
    ]
