"""The output contracts: valid, closed and bounded schemas; errors that name the field; readers that agree."""

from __future__ import annotations

from typing import Any

import pytest

from podium.agent.backends.openai_wire import strict_compatible
from podium.agent.defaults import bid as default_bid
from podium.api.agent import AgentSpec
from podium.api.json_schema import check_schema
from podium.engine import contracts

ALL = [
    contracts.plan(["python", "research"]),
    contracts.plan(),
    contracts.assignments(["alpha", "beta"]),
    contracts.evaluate(3),
    contracts.review(),
    contracts.proposal("explore"),
    contracts.proposal("propose"),
    contracts.synthesis(),
    contracts.vote(1),
    contracts.vote(3),
]


def bounded(schema: Any) -> bool:
    """Every string has a maximum length (or a pattern that bounds it), every array a maximum count."""
    if isinstance(schema, list):
        return all(bounded(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "string" and "maxLength" not in schema and "enum" not in schema:
        return False
    if schema.get("type") == "array" and "maxItems" not in schema:
        return False
    return all(bounded(v) for k, v in schema.items() if k != "enum")


@pytest.mark.parametrize("contract", ALL, ids=lambda c: f"{c.kind}-{len(str(c.schema))}")
def test_every_contract_is_a_closed_bounded_schema_with_an_instruction(contract: contracts.Contract) -> None:
    check_schema(contract.schema)
    assert strict_compatible(contract.schema)  # what OpenAI's strict mode needs; llama.cpp then adds nothing
    assert bounded(contract.schema)
    assert contract.schema["description"]  # the llm backend's instruction comes from here


def test_bid_contract_is_bounded_and_the_runtime_default_bid_honours_it() -> None:
    contract = contracts.bid()
    check_schema(contract.schema)
    spec = AgentSpec.model_validate(
        {"role": "r", "backend": {"python": {"entrypoint": "m:f"}}, "pricing": {"perTask": 2}}
    )
    answer = default_bid(spec, {"capability": "python"}, load=0.5, eta_seconds=3.0)
    assert contract.error(answer) is None
    assert contracts.read_bid(answer) == (2.0, 3.0)
    assert contract.error({"decline": True}) is None and contracts.read_bid({"decline": True}) is None
    # The name the runtime once used is not a time the market can read: the contract says so.
    assert contract.error({"price": 1, "eta_seconds": 3}) == "unexpected field 'eta_seconds'"
    assert contract.error({"price": 1}) == "missing field 'estimatedSeconds', or missing field 'decline'"


def test_errors_name_the_field() -> None:
    evaluate = contracts.evaluate(2)
    assert evaluate.error({"scores": [3, 11]}) == "field 'scores[1]' is 11, must be <= 10"
    assert evaluate.error({"scores": [3]}) == "field 'scores' has 1 items, at least 2 allowed"
    assert evaluate.error({"quality": 0.8, "reason": "fine"}) is not None
    review = contracts.review()
    assert (
        review.error({"score": 7, "comment": "x" * 201})
        == "field 'comment' is 201 characters long, at most 200 allowed"
    )
    assert review.error({"score": "7", "comment": "ok"}) == "field 'score' must be integer, got string \"7\""
    assert review.error("great") == 'the answer must be object, got string "great"'
    plan = contracts.plan(["python"])
    # centralCommand's plan takes a description now: the field the llm backend's old instruction asked for.
    good = {"tasks": [{"name": "write-code", "description": "write it", "capabilities": ["python"]}]}
    assert plan.error(good) is None
    bad_skill = {"tasks": [{"name": "x", "description": "d", "capabilities": ["rust"]}]}
    assert plan.error(bad_skill) == 'field \'tasks[0].capabilities[0]\' is "rust", must be one of "python"'
    assert plan.error({"tasks": [{"name": "Bad Name", "description": "d", "capabilities": []}]}) == (
        f"field 'tasks[0].name' is \"Bad Name\", must match {contracts.PLANNED_NAME_PATTERN}"
    )


def test_readers() -> None:
    plan = {
        "tasks": [
            {"name": "draft", "description": "write", "capabilities": []},
            {"name": "draft", "description": "write again", "capabilities": ["python"]},
        ]
    }
    tasks = contracts.read_plan(plan)
    assert [t.name for t in tasks] == ["draft", "draft-2"]  # both run
    assert tasks[1].description == "write again" and tasks[1].capabilities == ["python"]
    assert contracts.read_scores({"scores": [0, 5, 10]}) == [0.0, 0.5, 1.0]
    assert contracts.read_review({"score": 7, "comment": "ok"}) == 0.7
    assignments = contracts.assignments(["a", "b"])
    assert assignments.error({"assignments": {"a": ["x"]}}) == "missing field 'assignments.b'"
    assert assignments.error({"assignments": {"a": ["x"], "b": []}}) is not None  # every team gets a task
    assert assignments.error({"assignments": {"a": ["x"], "b": ["1", "2", "3", "4"]}}) is not None  # at most 3
    plan = {"assignments": {"a": ["x"], "b": ["y", "z"]}}
    assert assignments.error(plan) is None
    assert contracts.read_assignments(plan) == {"a": ["x"], "b": ["y", "z"]}


def test_a_stage_contract_refuses_an_invalid_schema() -> None:
    with pytest.raises(contracts.ContractError, match="not a valid JSON Schema"):
        contracts.stage({"type": 12})


def test_a_vote_is_a_choice_among_the_current_value_and_each_proposal() -> None:
    vote = contracts.vote(2)
    assert vote.error({"choice": 2, "reason": "the second one holds both sections"}) is None
    assert vote.error({"choice": 3, "reason": "x"}) == "field 'choice' is 3, must be <= 2"
    assert vote.error({"choice": 1}) == "missing field 'reason'"
    assert contracts.read_vote({"choice": 0, "reason": "keep it"}) == 0
