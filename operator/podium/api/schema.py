"""Pydantic JSON Schema (2020-12) -> structural OpenAPI v3 schema, as a CRD needs it.

What changes on the way: ``$ref`` is inlined, ``Optional[X]`` becomes ``X`` (optional = not required),
``Any`` becomes ``x-kubernetes-preserve-unknown-fields``, numeric ``exclusiveMinimum`` becomes the OpenAPI v3.0
boolean form, titles are dropped, and each model's :class:`~podium.api.common.Rule` list becomes its
``x-kubernetes-validations``.
"""

from __future__ import annotations

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
    return _with_rules(_convert(raw, defs, rules), rules.get(model.__name__))


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
            for sub in _models_in(field.annotation):
                visit(sub)

    visit(model)
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _convert(node: Schema, defs: Schema, rules: dict[str, list[dict[str, str]]]) -> Schema:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = _with_rules(_convert(defs[name], defs, rules), rules.get(name))
        if "description" in node:
            merged["description"] = node["description"]
        if "default" in node:
            merged["default"] = node["default"]
        return merged

    variants = node.get("anyOf") or node.get("oneOf")
    if variants is not None:
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express a union of {len(non_null)} types in a structural schema: {node}")
        inner = _convert(non_null[0], defs, rules)
        for key in ("description", "default"):
            if key in node and node[key] is not None:
                inner[key] = node[key]
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


def _with_rules(schema: Schema, rules: list[dict[str, str]] | None) -> Schema:
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema
