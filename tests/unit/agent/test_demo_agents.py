from __future__ import annotations

from typing import Any

from podium.dataplane.messages import Task
from podium.demo import agents
from podium.engine.strategies.central_command import parse_plan
from podium.engine.strategies.swarm import parse_scores


def run(fn: Any, kind: str, data: Any) -> Any:
    return fn(Task(id="t", kind=kind, input=data, namespace="n", agent="a"))


def test_planner_returns_a_dependency_graph() -> None:
    plan = run(agents.planner, "plan", {"goal": "Compare Redis streams and Kafka for agent messaging"})
    names = [t["name"] for t in plan["tasks"]]
    assert names[-2:] == ["analyze", "synthesize"] and len(names) >= 3
    assert all(dep in names for t in plan["tasks"] for dep in t["input"]["dependsOn"])
    # The shape centralCommand accepts, so the demo planner can command.
    assert parse_plan(plan)[0].capabilities == ["research"]
    assert plan == run(agents.planner, "plan", {"goal": "Compare Redis streams and Kafka for agent messaging"})


def test_swarm_evaluation_scores_every_solution_in_order() -> None:
    task = {"input": {"problem": "cache invalidation strategy"}, "solutions": ["cache invalidation strategy", "x"]}
    out = run(agents.analyzer, "evaluate", task)
    assert parse_scores(out["output"], 2) == [1.0, 0.0]


def test_review_scores_coverage() -> None:
    good = run(
        agents.analyzer,
        "review",
        {"problem": "cache invalidation strategy", "solution": "cache invalidation strategy via TTL"},
    )
    poor = run(agents.analyzer, "evaluate", {"problem": "cache invalidation strategy", "solution": "something else"})
    assert good["quality"] == 1.0 and good["output"]["verdict"] == "good"
    assert poor["quality"] == 0.0


def test_exploration_improves_on_the_best_and_converges() -> None:
    problem = "design resilient retry backoff jitter policy"
    best: Any = None
    qualities = []
    for generation in range(8):
        answer = run(agents.researcher, "explore", {"problem": problem, "best": best, "generation": generation})
        best, quality = answer["output"], answer["quality"]
        qualities.append(quality)
    assert qualities == sorted(qualities) and qualities[-1] == 1.0


def test_explorers_differ() -> None:
    a = run(agents.researcher, "explore", {"problem": "alpha beta gamma delta epsilon"})
    b = run(agents.analyzer, "explore", {"problem": "alpha beta gamma delta epsilon"})
    assert a["output"]["points"] != b["output"]["points"]


def test_synthesis_and_documents() -> None:
    merged = run(agents.synthesizer, "synthesize", {"results": {"a": "first finding", "b": {"text": "second"}}})
    assert merged["sources"] == 2 and "first finding" in merged["summary"] and "second" in merged["summary"]
    doc = run(agents.documenter, "execute", {"text": "Kubernetes operators reconcile desired state"})
    assert doc["keywords"][0] == "kubernetes"


def test_bid_is_left_to_the_runtime() -> None:
    assert "bid" not in agents.planner.kinds  # type: ignore[attr-defined]
