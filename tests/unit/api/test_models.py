"""Good manifests parse; bad ones fail with messages that say what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from podium.api import Agent, Orchestration, OrchestrationSpec, Team
from podium.api.orchestration import MarketSpec
from podium.api.validation import SpecError, parse

ROOT = Path(__file__).resolve().parents[3]
BAD_SPECS: list[dict[str, Any]] = yaml.safe_load((ROOT / "tests/data/bad-specs.yaml").read_text())
# examples/ (language-model agents) and the deterministic copy the cluster tests run.
EXAMPLE_DIRS = (ROOT / "examples", ROOT / "tests" / "data" / "deterministic")


def example_documents(where: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every Podium object in the example directories (the autoscaling ones sit next to HPA and KEDA objects)."""
    return [
        (f"{path.relative_to(ROOT)}:{doc['metadata']['name']}", doc)
        for top in ([where] if where else EXAMPLE_DIRS)
        for path in sorted(top.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and str(doc.get("apiVersion", "")).startswith("podium.dev/")
    ]


@pytest.mark.parametrize(("label", "manifest"), example_documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_example_is_valid(label: str, manifest: dict[str, Any]) -> None:
    parsed = parse(manifest)
    assert parsed.metadata.name == manifest["metadata"]["name"]


@pytest.mark.parametrize("where", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_examples_cover_every_strategy(where: Path) -> None:
    strategies = {doc["spec"]["strategy"] for _, doc in example_documents(where) if doc["kind"] == "Orchestration"}
    assert strategies == {"hierarchical", "pipeline", "swarm", "eventDriven", "centralCommand", "peerToPeer", "market"}


@pytest.mark.parametrize("case", BAD_SPECS, ids=lambda c: c["name"])
def test_bad_spec_is_rejected_with_an_actionable_message(case: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as caught:
        parse(case["manifest"])
    assert any(case["expect"] in problem for problem in caught.value.problems), caught.value.problems
    # Every problem names where it is, so the user knows which field to change.
    assert all(problem.startswith("spec") for problem in caught.value.problems), caught.value.problems


def test_defaults_fill_in_what_the_user_left_out() -> None:
    agent = Agent.model_validate(
        {
            "kind": "Agent",
            "metadata": {"name": "a"},
            "spec": {"role": "coder", "backend": {"python": {"entrypoint": "m:f"}}},
        }
    )
    assert agent.spec.replicas == 1
    assert agent.spec.concurrency == 4
    assert agent.spec.priority == "important"
    assert agent.spec.resilience.retry.backoff.factor == 2.0
    assert agent.spec.backend.type == "python"
    spec = OrchestrationSpec.model_validate({"strategy": "market"})
    assert spec.limits.max_tasks == 1000
    assert spec.market is None and spec.block() == MarketSpec()  # market's defaults apply


def test_wire_form_round_trips_in_camel_case() -> None:
    manifest = {
        "kind": "Orchestration",
        "metadata": {"name": "o"},
        "spec": {
            "strategy": "pipeline",
            "pipeline": {"stages": [{"name": "s", "role": "coder", "validate": {"jsonSchema": {"type": "object"}}}]},
        },
    }
    orch = Orchestration.model_validate(manifest)
    wire = orch.spec.to_wire()
    assert wire["pipeline"]["stages"][0]["validate"] == {"jsonSchema": {"type": "object"}}
    assert wire["limits"]["timeoutSeconds"] == 3600
    assert OrchestrationSpec.model_validate(wire) == orch.spec


def test_event_graph_cycles_are_rejected() -> None:
    with pytest.raises(SpecError) as caught:
        parse(
            {
                "kind": "Orchestration",
                "metadata": {"name": "cycle"},
                "spec": {
                    "strategy": "eventDriven",
                    "eventDriven": {
                        "tasks": [
                            {"name": "a", "role": "x", "dependsOn": ["b"]},
                            {"name": "b", "role": "x", "dependsOn": ["a"]},
                        ]
                    },
                },
            }
        )
    assert caught.value.problems == ["spec.eventDriven: tasks.dependsOn has a cycle"]


def test_team_selector_matches_labels() -> None:
    team = Team.model_validate(
        {
            "kind": "Team",
            "metadata": {"name": "t"},
            "spec": {
                "members": [
                    {
                        "selector": {
                            "matchLabels": {"team": "r"},
                            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}],
                        }
                    }
                ]
            },
        }
    )
    selector = team.spec.members[0].selector
    assert selector is not None
    assert selector.matches({"team": "r", "tier": "y"})
    assert not selector.matches({"team": "r", "tier": "x"})
    assert not selector.matches({"team": "q"})
    assert selector.to_label_selector_string() == "team=r,tier notin (x)"


def test_unknown_kind_is_named() -> None:
    with pytest.raises(SpecError, match="kind: must be one of Agent, Team, Orchestration"):
        parse({"kind": "Agnet", "metadata": {"name": "x"}, "spec": {}})
