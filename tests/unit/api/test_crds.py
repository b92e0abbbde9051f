"""The checked-in CRDs are what the models generate, and they are what a Kubernetes API server accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from podium.api.crd import KINDS
from podium.api.crdgen import render

ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = ROOT / "crds"


def load(kind_file: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CRD_DIR / kind_file).read_text())
    return data


def schema_of(doc: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += walk(child, f"{path}.{name}")
    if "items" in node:
        found += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += walk(node["additionalProperties"], f"{path}{{}}")
    return found


def resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    node = schema
    for part in json_path.strip(".").split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_checked_in_crd_matches_the_models(kind: Any) -> None:
    checked_in = (CRD_DIR / kind.file_name).read_text()
    assert checked_in == render(KINDS.index(kind)), f"crds/{kind.file_name} is stale: run `make crds`"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Any) -> None:
    doc = load(kind.file_name)
    text = (CRD_DIR / kind.file_name).read_text()
    assert "$ref" not in text and "anyOf" not in text and "allOf" not in text and "oneOf" not in text
    for path, node in walk(schema_of(doc)):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, f"{path} has no type"
        if "properties" in node:
            assert node["type"] == "object", f"{path} has properties but is not an object"
        if node.get("type") == "array":
            assert "items" in node, f"{path} is an array without items"
        assert "title" not in node, f"{path} carries a title"
        assert "nullable" not in node, f"{path}: optional fields are left out, never null"
        assert isinstance(node.get("exclusiveMinimum", False), bool), f"{path}: use the OpenAPI v3.0 boolean form"


def test_defaults_enums_and_bounds_are_carried_over() -> None:
    spec = schema_of(load("agents.yaml"))["properties"]["spec"]
    assert spec["properties"]["replicas"]["default"] == 1
    assert spec["properties"]["replicas"]["minimum"] == 0
    assert spec["properties"]["priority"]["enum"] == ["critical", "important", "optional"]
    capability = spec["properties"]["capabilities"]["items"]["properties"]["level"]
    assert (capability["minimum"], capability["maximum"]) == (0.0, 1.0)
    orch = schema_of(load("orchestrations.yaml"))["properties"]["spec"]
    assert orch["properties"]["pipeline"]["properties"]["stages"]["minItems"] == 1
    assert orch["properties"]["strategy"]["enum"] == [
        "hierarchical", "pipeline", "swarm", "eventDriven", "centralCommand", "peerToPeer", "market",
    ]  # fmt: skip


def test_agent_scale_subresource_points_at_real_fields() -> None:
    doc = load("agents.yaml")
    version = doc["spec"]["versions"][0]
    scale = version["subresources"]["scale"]
    schema = schema_of(doc)
    assert resolve(schema, scale["specReplicasPath"])["type"] == "integer"
    assert resolve(schema, scale["statusReplicasPath"])["type"] == "integer"
    assert resolve(schema, scale["labelSelectorPath"])["type"] == "string"
    for kind in KINDS:
        assert "status" in load(kind.file_name)["spec"]["versions"][0]["subresources"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_printer_columns_name_fields_of_the_schema(kind: Any) -> None:
    doc = load(kind.file_name)
    schema = schema_of(doc)
    columns = doc["spec"]["versions"][0]["additionalPrinterColumns"]
    # Age closes the default columns; the wide ones (-o wide) may follow it, as a Pod's IP and Node do.
    assert [c["name"] for c in columns if not c.get("priority")][-1] == "Age"
    for column in [c for c in columns if c["name"] != "Age"]:
        node = resolve(schema, column["jsonPath"])
        assert column["type"] in ("string", "number", "integer", "boolean", "date")
        assert node.get("type", "string") == {"date": "string"}.get(column["type"], column["type"]), column


def test_names_short_names_and_category() -> None:
    names = {k.kind: load(k.file_name)["spec"]["names"] for k in KINDS}
    assert names["Agent"]["shortNames"] == ["ag"]
    assert names["Team"]["shortNames"] == ["tm"]
    assert names["Orchestration"]["shortNames"] == ["orch"]
    assert all(n["categories"] == ["podium"] for n in names.values())


def rules_in(doc: dict[str, Any]) -> list[str]:
    return [r["rule"] for _, node in walk(schema_of(doc)) for r in node.get("x-kubernetes-validations", [])]


def test_cel_rules_are_present_where_a_schema_alone_cannot_say_it() -> None:
    agent_rules = rules_in(load("agents.yaml"))
    assert any("has(self.command)" in r and "size() == 1" in r for r in agent_rules), "exactly one backend"
    assert any("exists_one" in r for r in agent_rules), "unique capabilities"
    orch_rules = rules_in(load("orchestrations.yaml"))
    for block in ("hierarchical", "pipeline", "swarm", "eventDriven", "centralCommand", "peerToPeer", "market"):
        assert f"!has(self.{block}) || self.strategy == '{block}'" in orch_rules, block
    assert "self.strategy != 'pipeline' || has(self.pipeline)" in orch_rules
    assert any("self.capability + self.performance + self.load" in r for r in orch_rules)
    assert any("dependsOn" in r for r in orch_rules)
    team_rules = rules_in(load("teams.yaml"))
    assert any("has(self.agent)" in r and "has(self.selector)" in r for r in team_rules)


def test_conditions_merge_by_type() -> None:
    status = schema_of(load("agents.yaml"))["properties"]["status"]
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_helm_chart_ships_the_same_crds(kind: Any) -> None:
    chart_copy = ROOT / "charts/podium/crds" / kind.file_name
    assert chart_copy.read_text() == (CRD_DIR / kind.file_name).read_text(), "run `make crds`"
