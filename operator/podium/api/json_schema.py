"""Checking a JSON value against a JSON Schema (draft 2020-12), with errors that name the field.

Both sides of the bus use it: the engine checks what agents return against a task's output contract (and a
pipeline stage's ``validate.jsonSchema``), and the agent runtime checks its backends' answers against the schema
that travels with the task. One wording for both, so an agent's log and the orchestration's status agree.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any, cast

import jsonschema
from jsonschema import Draft202012Validator

# How much of an offending value an error quotes: a model's runaway answer must not flood a status message.
QUOTE_CHARS = 80


class InvalidSchema(ValueError):
    """The schema itself is not a valid JSON Schema."""


def check_schema(schema: Any) -> None:
    """Raise :class:`InvalidSchema` naming what is wrong with ``schema``."""
    if not isinstance(schema, dict):
        raise InvalidSchema(f"a JSON Schema is an object, got {type(schema).__name__}")
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = field_path(exc.absolute_path)
        raise InvalidSchema(f"{exc.message}" + (f" (at {where})" if where else "")) from None


@functools.lru_cache(maxsize=512)
def _validator(canonical: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(canonical))


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    """A compiled validator, cached by the schema's content (tasks of one kind share their contract)."""
    check_schema(schema)
    return _validator(json.dumps(schema, sort_keys=True))


def first_error(schema: dict[str, Any], value: Any) -> str | None:
    """The most relevant problem of ``value`` against ``schema``, naming the field; None if it is valid."""
    error = jsonschema.exceptions.best_match(validator_for(schema).iter_errors(value))
    return None if error is None else describe(error)


def field_path(parts: Iterable[Any]) -> str:
    """``tasks[0].name`` from the path parts ``("tasks", 0, "name")``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def quote(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"))


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), type(value).__name__)


def describe(error: jsonschema.ValidationError) -> str:
    """One line that names the field and says what is wrong, quoting at most :data:`QUOTE_CHARS` of the value."""
    path = field_path(error.absolute_path)
    field = f"field {path!r}" if path else "the answer"
    # jsonschema types these as "maybe unset"; on an error from iter_errors they are always set.
    rule, expected, value = error.validator, cast(Any, error.validator_value), cast(Any, error.instance)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if rule == "required" and isinstance(value, dict):
        missing = [name for name in expected if name not in value]
        names = ", ".join(repr(field_path([*error.absolute_path, name])) for name in missing)
        return f"missing field {names}" if len(missing) == 1 else f"missing fields {names}"
    if rule == "additionalProperties" and isinstance(value, dict):
        known = set(schema.get("properties", {}))
        extra = [name for name in value if name not in known]
        names = ", ".join(repr(field_path([*error.absolute_path, name])) for name in extra)
        return f"unexpected field {names}" if len(extra) == 1 else f"unexpected fields {names}"
    if rule == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{field} must be {wanted}, got {json_type(value)} {quote(value)}"
    if rule in ("maxLength", "minLength"):
        bound = "at most" if rule == "maxLength" else "at least"
        return f"{field} is {len(value)} characters long, {bound} {expected} allowed"
    if rule in ("maxItems", "minItems"):
        bound = "at most" if rule == "maxItems" else "at least"
        return f"{field} has {len(value)} items, {bound} {expected} allowed"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[rule]
        return f"{field} is {quote(value)}, must be {relation} {expected}"
    if rule == "enum":
        return f"{field} is {quote(value)}, must be one of {', '.join(quote(v) for v in expected)}"
    if rule == "const":
        return f"{field} is {quote(value)}, must be {quote(expected)}"
    if rule in ("anyOf", "oneOf") and error.context:
        # What each alternative lacks: "missing field 'estimatedSeconds', or missing field 'decline'".
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        found = [jsonschema.exceptions.best_match(subs) for subs in branches.values()]
        return ", or ".join(dict.fromkeys(describe(e) for e in found if e is not None))
    if rule == "pattern":
        return f"{field} is {quote(value)}, must match {expected}"
    message = error.message if len(error.message) <= 2 * QUOTE_CHARS else error.message[: 2 * QUOTE_CHARS] + "..."
    return f"{field}: {message}"
