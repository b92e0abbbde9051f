"""Pydantic JSON Schema (2020-12) -> structural OpenAPI v3 schema, as a CRD needs it.

What changes on the way: ``$ref`` is inlined, ``Optional[X]`` becomes ``X`` (optional = not required),
``Any`` becomes ``x-kubernetes-preserve-unknown-fields``, numeric ``exclusiveMinimum`` becomes the OpenAPI v3.0
boolean form, titles are dropped, and each model's :class:`~podium.api.common.Rule` list becomes its
``x-kubernetes-validations``.

Descriptions are what ``kubectl explain`` shows. A field's description is its own docstring (or
``Field(description=...)``: what the field means where it is) followed by its type's docstring (a model's or an
enum's: what the type is and what its values mean). Source line breaks are unwrapped so kubectl can wrap the text
to the terminal; blank lines and ``- `` list items are kept. Facts the schema already states and kubectl does not
show (default, numeric range, list size) are appended to a field's description, so they cannot drift from the
model. A field with no text of its own gets no facts either: it stays undescribed, and the test on descriptions
names it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from podium.api.common import Model

Schema = dict[str, Any]

_KEPT = (
    "type", "description", "enum", "default", "format", "pattern", "minimum", "maximum", "minLength",
    "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
)  # fmt: skip


def model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    rules = _rules_by_name(model)
    schema = _with_rules(_convert(raw, defs, rules), rules.get(model.__name__))
    _document(schema, field=False)
    return schema


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation names: ``X``, ``X | None``, ``list[X]``, ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in models_in(arg)]


def _rules_by_name(model: type[BaseModel]) -> dict[str, list[dict[str, str]]]:
    """Rules of every model reachable from ``model``, keyed by class name (pydantic's ``$defs`` key)."""
    found: dict[str, list[dict[str, str]]] = {}
    seen: set[type[BaseModel]] = set()

    def visit(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.add(m)
        if issubclass(m, Model) and m.rules:
            found[m.__name__] = [{"rule": r.cel, "message": r.message} for r in m.rules]
        for field in m.model_fields.values():
            for sub in models_in(field.annotation):
                visit(sub)

    visit(model)
    return found


def _convert(node: Schema, defs: Schema, rules: dict[str, list[dict[str, str]]]) -> Schema:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = _with_rules(_convert(defs[name], defs, rules), rules.get(name))
        _describe(merged, node.get("description"))
        if "default" in node:
            merged["default"] = node["default"]
        return merged

    variants = node.get("anyOf") or node.get("oneOf")
    if variants is not None:
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express a union of {len(non_null)} types in a structural schema: {node}")
        inner = _convert(non_null[0], defs, rules)
        _describe(inner, node.get("description"))
        if node.get("default") is not None:
            inner["default"] = node["default"]
        return inner

    out: Schema = {k: node[k] for k in _KEPT if k in node}
    if out.get("default", 0) is None:
        del out["default"]
    if "const" in node:
        out["enum"] = [node["const"]]
    if "exclusiveMinimum" in node:
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if "enum" in out and "type" not in out:
        out["type"] = "string"

    kind = out.get("type")
    if kind is None:
        # Any: free JSON of any type, kept as sent.
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "object":
        props = node.get("properties")
        if props is not None:
            out["properties"] = {name: _convert(p, defs, rules) for name, p in props.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _convert(extra, defs, rules)
        elif props is None:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _convert(node.get("items", {}), defs, rules)
    return out


def _describe(schema: Schema, own: str | None) -> None:
    """Put a field's own text before its type's (``schema`` holds the type's, if it has one)."""
    if own:
        schema["description"] = "\n\n".join(t for t in (own, schema.get("description")) if t)


def _with_rules(schema: Schema, rules: list[dict[str, str]] | None) -> Schema:
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def _document(node: Schema, *, field: bool) -> None:
    """Unwrap every description; append the schema's facts to the descriptions of fields."""
    if node.get("description"):
        text = prose(node.pop("description"))
        known = " ".join(facts(node) if field else [])
        if known:
            # After a list, its own paragraph; else the last sentence of the text.
            text += ("\n\n" if "\n" in text else " ") + known
        # Right after the type, where a reader of the YAML looks first.
        rest = {k: node.pop(k) for k in list(node) if k != "type"}
        node.update(description=text, **rest)
    for child in node.get("properties", {}).values():
        _document(child, field=True)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _document(node[key], field=False)


def prose(text: str) -> str:
    """Docstring text as one line per paragraph or ``- `` list item, paragraphs separated by a blank line."""
    paragraphs = []
    for block in text.strip().split("\n\n"):
        lines: list[str] = []
        for raw in block.splitlines():
            line = raw.strip()
            if not line:
                continue
            if lines and not line.startswith("- "):
                lines[-1] += " " + line
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(p for p in paragraphs if p)


def facts(node: Schema) -> list[str]:
    """Default, numeric range and list size of a field, as short sentences."""
    out = []
    if "default" in node:
        out.append(f"Default: {_shown(node['default'])}.")
    low, high = _bound(node, "minimum", "exclusiveMinimum"), _bound(node, "maximum", "exclusiveMaximum")
    if low and high:
        out.append(f"Range: {low} to {high}.")
    elif low:
        out.append(f"Minimum: {low}.")
    elif high:
        out.append(f"Maximum: {high}.")
    few, many = node.get("minItems"), node.get("maxItems")
    if few is not None and many is not None:
        out.append(f"{few} to {many} items.")
    elif many is not None:
        out.append(f"At most {many} items.")
    elif few is not None:
        out.append(f"At least {few} item{'' if few == 1 else 's'}.")
    return out


def _bound(node: Schema, key: str, exclusive: str) -> str:
    if key not in node:
        return ""
    return _shown(node[key]) + (" (exclusive)" if node.get(exclusive) else "")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)
