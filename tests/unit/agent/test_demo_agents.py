from __future__ import annotations

from typing import Any

from podium.dataplane.messages import Task
from podium.demo import agents
from podium.engine import contracts


def run(fn: Any, kind: str, data: Any) -> Any:
    return fn(Task(id="t", kind=kind, input=data, namespace="n", agent="a"))


def test_planner_answers_the_plan_contracts() -> None:
    goal = {"goal": "Compare Redis streams and Kafka for agent messaging"}
    roster = [{"name": "r", "role": "researcher", "capabilities": {"research": 0.9}}]
    plan = run(agents.planner, "plan", {"input": goal, "agents": roster})
    assert contracts.plan(["research"]).error(plan) is None  # the shape centralCommand reads
    tasks = contracts.read_plan(plan)
    assert [t.name for t in tasks][-2:] == ["analyze", "synthesize"] and len(tasks) >= 3
    assert tasks[0].capabilities == ["research"] and tasks[-1].capabilities == []  # nobody writes: not asked for
    assert plan == run(agents.planner, "plan", {"input": goal, "agents": roster})
    parts = run(agents.planner, "plan", {"input": goal, "teams": ["alpha", "beta"]})
    assert contracts.assignments(["alpha", "beta"]).error(parts) is None


def test_swarm_evaluation_scores_every_solution_in_order() -> None:
    task = {"input": {"problem": "cache invalidation strategy"}, "solutions": ["cache invalidation strategy", "x"]}
    out = run(agents.analyzer, "evaluate", task)
    assert contracts.evaluate(2).error(out["output"]) is None
    assert contracts.read_scores(out["output"]) == [1.0, 0.0]


def test_review_scores_coverage() -> None:
    good = run(
        agents.analyzer,
        "review",
        {"problem": "cache invalidation strategy", "solution": "cache invalidation strategy via TTL"},
    )
    poor = run(agents.analyzer, "evaluate", {"problem": "cache invalidation strategy", "solution": "something else"})
    assert contracts.review().error(good["output"]) is None
    assert good["quality"] == 1.0 and good["output"]["comment"].startswith("good")
    assert poor["quality"] == 0.0
    # peerToPeer's review shows the proposal next to the current solution (none before one was applied).
    peer = {"input": {"draft": "podium runs agents"}, "solution": None, "round": 1, "proposal": "podium: runs agents"}
    assert run(agents.analyzer, "review", peer)["quality"] > 0.5


def test_exploration_improves_on_the_best_and_converges() -> None:
    problem = "design resilient retry backoff jitter policy"
    best: Any = None
    qualities = []
    for generation in range(8):
        answer = run(agents.researcher, "explore", {"problem": problem, "best": best, "generation": generation})
        assert contracts.proposal("explore").error(answer["output"]) is None
        best, quality = answer["output"]["solution"], answer["quality"]
        qualities.append(quality)
    assert qualities == sorted(qualities) and qualities[-1] == 1.0


def test_explorers_differ() -> None:
    a = run(agents.researcher, "explore", {"problem": "alpha beta gamma delta epsilon"})
    b = run(agents.analyzer, "explore", {"problem": "alpha beta gamma delta epsilon"})
    assert a["output"]["solution"] != b["output"]["solution"]


def test_synthesis_and_documents() -> None:
    merged = run(agents.synthesizer, "execute", {"results": {"a": "first finding", "b": {"text": "second"}}})
    assert merged["sources"] == 2 and "first finding" in merged["summary"] and "second" in merged["summary"]
    for fn in (agents.planner, agents.researcher, agents.analyzer, agents.synthesizer, agents.documenter):
        integrated = run(fn, "synthesize", {"results": {"a": "first finding", "b": {"text": "second"}}})
        assert contracts.synthesis().error(integrated["output"]) is None
        assert "first finding" in integrated["output"]["answer"]
    doc = run(agents.documenter, "execute", {"text": "Kubernetes operators reconcile desired state"})
    assert doc["keywords"][0] == "kubernetes"


def test_bid_is_left_to_the_runtime() -> None:
    assert "bid" not in agents.planner.kinds  # type: ignore[attr-defined]


def test_every_demo_agent_answers_every_strategy_kind_in_its_contract() -> None:
    problem = {"problem": "cache invalidation strategy"}
    asked = [
        ("explore", {"input": problem, "generation": 1, "best": None}, contracts.proposal("explore")),
        ("propose", {"input": problem, "round": 1, "solution": None}, contracts.proposal("propose")),
        ("review", {"input": problem, "proposal": "cache invalidation via TTL"}, contracts.review()),
        ("evaluate", {"input": problem, "solutions": ["TTL", "cache invalidation strategy"]}, contracts.evaluate(2)),
        ("synthesize", {"input": problem, "results": {"a": "TTL"}}, contracts.synthesis()),
    ]
    for fn in (agents.planner, agents.researcher, agents.analyzer, agents.synthesizer, agents.documenter):
        for kind, data, contract in asked:
            answer = run(fn, kind, data)
            output = answer["output"] if isinstance(answer, dict) and "output" in answer else answer
            assert contract.error(output) is None, (fn.__name__, kind, output)


def test_the_collaboration_examples_agents_work_through_the_sdk() -> None:
    from podium.agent import sdk
    from podium.dataplane.messages import Task
    from podium.demo import collab

    def told(**values: object) -> dict[str, object]:
        return {"blackboard": {"values": {k: {"value": v, "version": 2} for k, v in values.items()}}}

    task = Task("u:task-intro:1", "execute", {"input": {"topic": "blackboards"}, "task": "intro"}, "ns", "w")
    task.context = told(outline={"topic": "blackboards", "sections": ["intro", "details"]}, draft={"details": "d"})
    with sdk.collecting(task.context) as asked:
        assert collab.section_writer(task) == {"section": "intro", "words": 9}
    (write,) = asked.state_updates
    assert write["key"] == "draft" and set(write["value"]) == {"details", "intro", "lastSection"}
    assert asked.messages == [{"type": "section.done", "payload": {"section": "intro"}}]
    vote = Task(
        "u:vote:1",
        "vote",
        {"current": {"intro": "i"}, "proposals": [{"value": {"intro": "i", "details": "d"}}]},
        "ns",
        "w",
    )
    assert collab.editor(vote)["choice"] == 1  # the proposal holding more sections
    message = Task(
        "u:message:1", "message", {"messages": [{"type": "section.done", "payload": {"section": "details"}}]}, "ns", "w"
    )
    with sdk.collecting(told(progress={"done": ["intro"]})) as asked:
        assert collab.tracker(message) == {"done": ["details", "intro"]}
    assert asked.state_updates == [{"key": "progress", "value": {"done": ["details", "intro"], "of": 2}}]


def test_a_peer_review_scores_the_proposal_while_no_solution_was_applied_yet() -> None:
    """peerToPeer sends ``solution: null`` until a proposal is applied: the review scores the proposal it is shown."""
    state = {"input": {"draft": "Podium runs agents"}, "solution": None, "round": 1}
    covering = run(agents.analyzer, "review", {**state, "proposal": "podium; runs; agents", "author": "planner"})
    unrelated = run(agents.analyzer, "review", {**state, "proposal": "something else", "author": "planner"})
    assert covering["output"]["score"] > unrelated["output"]["score"] == 0
    # Once one was applied, the proposal under review is still what is scored, not the current solution.
    applied = {**state, "solution": "podium; runs; agents", "proposal": "something else", "author": "planner"}
    assert run(agents.analyzer, "review", applied)["output"]["score"] == 0
