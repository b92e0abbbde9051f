"""Turn a manifest into a typed object, or into messages a user can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from podium.api.agent import Agent
from podium.api.common import Resource
from podium.api.orchestration import Orchestration
from podium.api.team import Team

KINDS: dict[str, type[Resource]] = {"Agent": Agent, "Team": Team, "Orchestration": Orchestration}


class SpecError(ValueError):
    """An invalid manifest; ``problems`` holds one ``path: message`` line per problem."""

    def __init__(self, kind: str, name: str, problems: list[str]) -> None:
        self.kind, self.name, self.problems = kind, name, problems
        super().__init__(f"invalid {kind} {name!r}: " + "; ".join(problems))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "tagged-union")):
            out += ("." if out else "") + str(part)
    return out


def explain(error: ValidationError) -> list[str]:
    """``spec.backend: exactly one of command, python, llm, http must be set`` style lines."""
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        path = _path(item["loc"])
        lines.append(f"{path}: {message}" if path else message)
    return lines


def parse(manifest: dict[str, Any]) -> Resource:
    """Validate a manifest of any Podium kind; raise :class:`SpecError` with every problem found."""
    kind = str(manifest.get("kind", ""))
    name = str((manifest.get("metadata") or {}).get("name", "?"))
    model = KINDS.get(kind)
    if model is None:
        raise SpecError(kind or "object", name, [f"kind: must be one of {', '.join(KINDS)}"])
    try:
        return model.model_validate(manifest)
    except ValidationError as e:
        raise SpecError(kind, name, explain(e)) from None
