"""The output contract of every task kind the strategies send, and the readers the strategies use on the answers.

A :class:`Contract` is a JSON Schema (draft 2020-12). It travels with the task (``Task.output_schema``): an
``llm`` backend asks the model for exactly that shape (structured output) and builds its instruction from the
schema's descriptions, python/command/http backends see it in their task document, and the runtime and the engine
both check the answer against it. The strategy then reads the answer with the reader next to its contract, so
what is asked and what is read cannot drift apart.

Every contract is closed (``additionalProperties: false``, every property required: what OpenAI's strict mode
needs) and bounded: strings have a maximum length and lists a maximum count, because a small model cut at its
token limit answers broken JSON, and grammar-constrained decoding (llama.cpp) enforces the bounds while it
generates. Scores are integers from 0 to 10, which a grammar can constrain (llama.cpp cannot bound a JSON
number) and small models handle better than fractions; the readers turn them into [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from podium.api.json_schema import InvalidSchema, check_schema, first_error
from podium.api.orchestration import PlannedTask

SCORE_MAX = 10
COMMENT_CHARS = 200
PART_CHARS = 300
SOLUTION_CHARS = 800
ANSWER_CHARS = 1000
MAX_PLANNED_TASKS = 6
MAX_TEAM_TASKS = 3  # tasks per team in a hierarchical plan: each costs the team a research, analysis and synthesis
# Task names a plan may give: what ``TaskName`` accepts, shortened (they become step ids and status lines).
PLANNED_NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$"


class ContractError(ValueError):
    """A contract cannot be built (an invalid user schema); the message says why."""


@dataclass(frozen=True)
class Contract:
    kind: str
    schema: dict[str, Any]

    def error(self, output: Any) -> str | None:
        """What is wrong with an answer, naming the field; None if it honours the contract."""
        return first_error(self.schema, output)


def _object(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _text(description: str, max_length: int) -> dict[str, Any]:
    return {"type": "string", "description": description, "minLength": 1, "maxLength": max_length}


def _score(description: str) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": 0, "maximum": SCORE_MAX}


def to_unit(score: int | float) -> float:
    """A contract score (0..10) as the engine's [0, 1]."""
    return min(1.0, max(0.0, float(score) / SCORE_MAX))


# ------------------------------------------------------------------------------------------------- plan
def plan(capabilities: Sequence[str] = (), max_tasks: int = MAX_PLANNED_TASKS) -> Contract:
    """centralCommand's plan: tasks other agents can do in parallel. ``capabilities`` are the ones the agents
    have; a planned task may only ask for those (an invented one would match no agent)."""
    task: dict[str, Any] = {
        "name": {
            "type": "string",
            "description": "a short name: lowercase words joined by dashes",
            "pattern": PLANNED_NAME_PATTERN,
            "maxLength": 32,
        },
        "description": _text("what the agent doing this task must do", COMMENT_CHARS),
    }
    if capabilities:
        task["capabilities"] = {
            "type": "array",
            "description": "skills the task needs",
            "items": {"enum": sorted(set(capabilities))},
            "maxItems": 3,
        }
    schema = _object(
        f"Split the goal into 1 to {max_tasks} tasks that different agents can do in parallel.",
        {
            "tasks": {
                "type": "array",
                "description": "the tasks",
                "items": _object("one task", task),
                "minItems": 1,
                "maxItems": max_tasks,
            }
        },
    )
    return Contract("plan", schema)


def read_plan(output: Any) -> list[PlannedTask]:
    """The planned tasks of an answer that honours :func:`plan`. A name given twice gets a suffix (``-2``), so two
    tasks a model named alike both run."""
    seen: dict[str, int] = {}
    tasks = []
    for raw in output["tasks"]:
        name = raw["name"]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name[:28]}-{seen[name]}"
        tasks.append(
            PlannedTask(name=name, description=raw["description"], capabilities=list(raw.get("capabilities", [])))
        )
    return tasks


def assignments(teams: Sequence[str], max_tasks: int = MAX_TEAM_TASKS) -> Contract:
    """hierarchical's plan: the tasks the coordinator gives each team (the pattern's team assignments)."""

    def tasks(team: str) -> dict[str, Any]:
        return {
            "type": "array",
            "description": f"the tasks of team {team}",
            "items": _text("one task", PART_CHARS),
            "minItems": 1,
            "maxItems": max_tasks,
        }

    schema = _object(
        f"Split the goal among the teams: 1 to {max_tasks} tasks for each team to work on.",
        {"assignments": _object("the tasks of each team", {t: tasks(t) for t in teams})},
    )
    return Contract("plan", schema)


def read_assignments(output: Any) -> dict[str, list[str]]:
    return {team: list(tasks) for team, tasks in output["assignments"].items()}


# ------------------------------------------------------------------------------------------------- scores
def evaluate(count: int) -> Contract:
    """swarm's evaluation: one score per candidate, in the order given."""
    schema = _object(
        "Score how well each candidate solves the problem, in the order given: 0 = useless, 10 = perfect.",
        {
            "scores": {
                "type": "array",
                "description": "one per candidate, in order",
                "items": _score("score of one candidate"),
                "minItems": count,
                "maxItems": count,
            }
        },
    )
    return Contract("evaluate", schema)


def read_scores(output: Any) -> list[float]:
    return [to_unit(s) for s in output["scores"]]


def review() -> Contract:
    """peerToPeer's review of a peer's proposal."""
    schema = _object(
        "Review the proposal: does it improve the current solution? 0 = worse or useless, 10 = excellent.",
        {"score": _score("your score"), "comment": _text("why, in one sentence", COMMENT_CHARS)},
    )
    return Contract("review", schema)


def read_review(output: Any) -> float:
    return to_unit(output["score"])


# ------------------------------------------------------------------------------------------------- solutions
_PROPOSALS = {
    "explore": "Propose a new candidate solution to the problem, better than the best one so far.",
    "propose": "Propose an improved version of the current solution.",
}


def proposal(kind: str) -> Contract:
    """swarm's ``explore`` and peerToPeer's ``propose``: a solution, as text."""
    schema = _object(_PROPOSALS[kind], {"solution": _text("the complete solution", SOLUTION_CHARS)})
    return Contract(kind, schema)


def synthesis() -> Contract:
    """The ``synthesize`` steps (hierarchical's team synthesis and integration, eventDriven's synthesizer)."""
    schema = _object(
        "Combine the results into one clear answer to the original input.",
        {"answer": _text("the combined answer", ANSWER_CHARS)},
    )
    return Contract("synthesize", schema)


# ------------------------------------------------------------------------------------------------- market
def bid() -> Contract:
    """market's bid: a price and an estimated duration, or a decline. The agent runtime's built-in bid
    (``podium.agent.defaults.bid``) answers this contract; the runtime checks it against the copy in the task."""
    schema: dict[str, Any] = {
        "type": "object",
        "description": "Bid for the task: your price and how long it will take, or decline it.",
        "properties": {
            "price": {"type": "number", "description": "what you charge", "minimum": 0},
            "estimatedSeconds": {"type": "number", "description": "how long it will take", "minimum": 0},
            "confidence": {"type": "number", "description": "how sure you are to deliver", "minimum": 0, "maximum": 1},
            "decline": {"type": "boolean", "description": "true: no bid"},
        },
        "anyOf": [{"required": ["price", "estimatedSeconds"]}, {"required": ["decline"]}],
        "additionalProperties": False,
    }
    return Contract("bid", schema)


def read_bid(output: Any) -> tuple[float, float] | None:
    """(price, estimated seconds), or None for a decline."""
    if output.get("decline"):
        return None
    return float(output["price"]), float(output["estimatedSeconds"])


# ------------------------------------------------------------------------------------------------- execute
def stage(schema: dict[str, Any]) -> Contract:
    """An ``execute`` task whose output must satisfy a user's schema (a pipeline stage's ``validate.jsonSchema``)."""
    try:
        check_schema(schema)
    except InvalidSchema as exc:
        raise ContractError(f"not a valid JSON Schema: {exc}") from None
    return Contract("execute", schema)


# ------------------------------------------------------------------------------------------------- vote
def vote(proposals: int) -> Contract:
    """A consensus vote on a conflicting write to the run's shared state (``conflictResolution: consensus``): keep
    the current value (0) or take one of the proposed values (1..n, in the order given)."""
    schema = _object(
        "Vote on the conflicting values of a shared key: 0 keeps the current value, 1 to "
        f"{proposals} takes that proposal (in the order given).",
        {
            "choice": {
                "type": "integer",
                "description": "0 = keep the current value, i = take proposal i",
                "minimum": 0,
                "maximum": proposals,
            },
            "reason": _text("why, in one sentence", COMMENT_CHARS),
        },
    )
    return Contract("vote", schema)


def read_vote(output: Any) -> int:
    """The chosen proposal (1..n), or 0 to keep the current value."""
    return int(output["choice"])
