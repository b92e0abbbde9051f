"""Every field of the CRDs has a description (what `kubectl explain` shows), and the generator builds it from the
models' docstrings: the field's own text, its type's text, then the facts the schema states."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from podium.api.common import Model
from podium.api.crd import KINDS, Kind, crd
from podium.api.schema import model_schema, prose

ROOT = Path(__file__).resolve().parents[3]
GENERATED_DIRS = ("crds", "charts/podium/crds")


def undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Paths without a description: ``node`` itself, every property at every depth, and every object that is an
    array's items or a map's values (a model, whose docstring describes it). Scalar items are described by their
    array."""
    missing = [] if str(node.get("description", "")).strip() else [path]
    for name, child in node.get("properties", {}).items():
        missing += undescribed(child, f"{path}.{name}")
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        child = node.get(key)
        if not isinstance(child, dict):
            continue
        if child.get("type") == "object":
            missing += undescribed(child, path + suffix)
        else:
            missing += [p for p in undescribed(child, path + suffix) if p != path + suffix]
    return missing


def undescribed_in_crd(doc: dict[str, Any]) -> list[str]:
    kind = doc["spec"]["names"]["kind"]
    missing = []
    for version in doc["spec"]["versions"]:
        root = f"{kind}({version['name']})"
        # The API server forbids a description on metadata; it publishes its own, described ObjectMeta there.
        missing += [p for p in undescribed(version["schema"]["openAPIV3Schema"], root) if p != f"{root}.metadata"]
    return missing


def _sources() -> list[Any]:
    params = [pytest.param(lambda k=k: crd(k), id=f"models-{k.kind}") for k in KINDS]
    for folder in GENERATED_DIRS:
        for k in KINDS:
            path = ROOT / folder / k.file_name
            params.append(pytest.param(lambda p=path: yaml.safe_load(p.read_text()), id=f"{folder}/{k.file_name}"))
    return params


@pytest.mark.parametrize("load", _sources())
def test_every_field_of_every_crd_has_a_description(load: Any) -> None:
    missing = undescribed_in_crd(load())
    assert not missing, (
        f"{len(missing)} CRD field(s) without a description (give each a docstring in operator/podium/api, "
        "then `make crds`; see docs/api.md):\n  " + "\n  ".join(missing)
    )


def test_the_walk_reaches_spec_and_status_at_every_depth() -> None:
    """The walk above sees deep fields of both subresources, so passing it means something."""
    seen: list[str] = []

    def collect(node: dict[str, Any], path: str) -> None:
        seen.append(path)
        for name, child in node.get("properties", {}).items():
            collect(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            collect(node["items"], path + "[]")

    for k in KINDS:
        collect(crd(k)["spec"]["versions"][0]["schema"]["openAPIV3Schema"], k.kind)
    assert "Agent.spec.resilience.retry.backoff.jitter" in seen
    assert "Orchestration.spec.pipeline.stages[].validate.jsonSchema" in seen
    assert "Orchestration.status.tasks[].error" in seen
    assert "Team.status.conditions[].lastTransitionTime" in seen
    assert len(seen) > 230


# ------------------------------------------------------------------ how the generator builds descriptions
class Colour(StrEnum):
    """- red: stop.
    - green: go.
    """

    red = "red"
    green = "green"


class Inner(Model):
    """A small object."""

    size: int = Field(default=3, ge=0, le=20)
    """How big it is, in
    widgets."""


class Outer(Model):
    """The outer object."""

    inner: Inner = Field(default_factory=Inner)
    """What this field is for."""
    plain: Inner | None = None
    colour: Colour = Colour.red
    """Which light to show."""
    delay: float = Field(default=1.0, gt=0, le=60)
    """Seconds to wait."""
    names: list[str] = Field(default_factory=list, min_length=1, max_length=4)
    """Names it goes by."""
    forgotten: int = Field(default=0, ge=0)


def test_a_field_shows_its_own_text_then_its_type_text() -> None:
    props = model_schema(Outer)["properties"]
    assert props["inner"]["description"] == "What this field is for.\n\nA small object."
    assert props["plain"]["description"] == "A small object."


def test_an_enum_field_lists_what_each_value_means_then_its_default() -> None:
    colour = model_schema(Outer)["properties"]["colour"]
    assert colour["description"] == "Which light to show.\n\n- red: stop.\n- green: go.\n\nDefault: red."
    assert colour["enum"] == ["red", "green"]


def test_defaults_ranges_and_sizes_are_appended_from_the_schema() -> None:
    props = model_schema(Outer)["properties"]
    assert props["inner"]["properties"]["size"]["description"] == (
        "How big it is, in widgets. Default: 3. Range: 0 to 20."
    )
    assert props["delay"]["description"] == "Seconds to wait. Default: 1. Range: 0 (exclusive) to 60."
    assert props["names"]["description"] == "Names it goes by. 1 to 4 items."


def test_a_field_without_text_of_its_own_stays_undescribed_and_is_named() -> None:
    schema = model_schema(Outer)
    assert "description" not in schema["properties"]["forgotten"], "facts alone must not pass for a description"
    assert undescribed(schema, "Outer") == ["Outer.forgotten"]


def test_prose_unwraps_lines_and_keeps_paragraphs_and_lists() -> None:
    text = "One sentence\n  wrapped.\n\nA list:\n- first\n  continued\n- second\n"
    assert prose(text) == "One sentence wrapped.\n\nA list:\n- first continued\n- second"


def test_real_fields_carry_their_units_defaults_and_edges() -> None:
    agent = next(k for k in KINDS if k.kind == "Agent")
    spec = crd(agent)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    retry = spec["properties"]["resilience"]["properties"]["retry"]
    limit = retry["properties"]["limit"]["description"]
    assert "limit + 1 attempts" in limit and "0 means a single attempt" in limit
    assert limit.endswith("Default: 3. Range: 0 to 20.")
    breaker = spec["properties"]["resilience"]["properties"]["circuitBreaker"]["properties"]
    assert "half-open" in breaker["recoveryTimeoutSeconds"]["description"]
    assert "0 runs no pods" in spec["properties"]["replicas"]["description"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_the_top_level_description_is_the_kinds_docstring(kind: Kind) -> None:
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["description"] == prose(kind.resource.__doc__ or "")
    assert schema["description"].startswith(f"An {kind.kind}" if kind.kind[0] in "AO" else f"A {kind.kind}")
