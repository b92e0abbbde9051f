"""Each strategy's picture, from its spec and the steps its journal holds (named as the strategies name them)."""

from __future__ import annotations

from typing import Any

from podium.viewer.pictures import SYNTHESIS_NODE, picture
from podium.viewer.steps import not_run


def step(name: str, agent: str, state: str = "Succeeded", output: Any = None, **kw: Any) -> dict[str, Any]:
    view = not_run(name, kw.pop("kind", "execute"), state)
    return {**view, "agent": agent, "attempts": 1, "output": output, **kw}


def steps(*views: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["step"]: v for v in views}


def test_pipeline_shows_its_stages_in_order_with_target_fallback_and_how_far_each_got() -> None:
    spec = {
        "strategy": "pipeline",
        "pipeline": {"stages": [
            {"name": "lint", "agent": "reviewer", "validate": {"jsonSchema": {"type": "array"}}},
            {"name": "summarise", "role": "documenter", "fallback": "synthesizer", "retries": 1},
            {"name": "publish", "capability": "writing"},
        ]},
    }  # fmt: skip
    drawn = picture(
        spec,
        steps(
            step("stage-lint", "reviewer"),
            step("stage-summarise", "synthesizer", "Failed", error="documenter: boom", attempts=3),
        ),
        None,
    )
    assert drawn["kind"] == "stages"
    got = [(s["name"], s["target"], s["fallback"], s["validated"], s["step"]["state"]) for s in drawn["stages"]]
    assert got == [
        ("lint", "agent reviewer", None, True, "Succeeded"),
        ("summarise", "role documenter", "synthesizer", False, "Failed"),
        ("publish", "capability writing", None, False, "Pending"),
    ]
    assert drawn["stages"][1]["step"]["error"] == "documenter: boom"


def test_event_driven_draws_the_graph_in_layers_with_fan_out_and_synthesis() -> None:
    spec = {
        "strategy": "eventDriven",
        "eventDriven": {
            "tasks": [
                {"name": "gather", "agents": ["r1", "r2"]},
                # Its step `task-gather-b` looks like a fan-out step of `gather` to an agent `b`: it is not.
                {"name": "gather-b", "role": "researcher"},
                {"name": "analyse", "role": "analyzer", "dependsOn": ["gather", "gather-b"]},
                {"name": "report", "role": "writer", "dependsOn": ["analyse"]},
            ],
            "synthesizer": "synth",
        },
    }
    drawn = picture(
        spec,
        steps(
            step("task-gather-r1", "r1"),
            step("task-gather-r2", "r2", "Failed", error="r2: down"),
            step("task-gather-b", "b"),
            step("task-analyse", "an", "Failed"),
            step("task-report", "", "Skipped"),
        ),
        None,
    )
    assert drawn["kind"] == "dag" and drawn["layers"] == 4
    nodes = {n["id"]: n for n in drawn["nodes"]}
    assert [(n["id"], n["layer"], n["state"]) for n in drawn["nodes"]] == [
        ("gather", 0, "Succeeded"),  # one of its two agents succeeded: the task did
        ("gather-b", 0, "Succeeded"),
        ("analyse", 1, "Failed"),
        ("report", 2, "Skipped"),
        (SYNTHESIS_NODE, 3, "Pending"),
    ]
    assert [s["agent"] for s in nodes["gather"]["steps"]] == ["r1", "r2"]
    assert [s["agent"] for s in nodes["gather-b"]["steps"]] == ["b"]
    assert nodes["gather"]["target"] == "agents r1, r2" and nodes[SYNTHESIS_NODE]["target"] == "agent synth"
    edges = {(e["from"], e["to"]) for e in drawn["edges"]}
    assert edges == {("gather", "analyse"), ("gather-b", "analyse"), ("analyse", "report"), ("report", SYNTHESIS_NODE)}


def test_swarm_gives_each_generations_scores_to_the_explorers_that_solved_and_the_best_so_far() -> None:
    spec = {"strategy": "swarm", "swarm": {"explorerRole": "researcher", "evaluator": "judge", "maxGenerations": 5,
                                           "targetScore": 0.9}}  # fmt: skip
    drawn = picture(
        spec,
        steps(
            # The evaluator scored solutions in explorer order (by name); the failed explorer had none.
            step("gen-1-explore-bo", "bo", kind="explore"),
            step("gen-1-explore-al", "al", kind="explore"),
            step("gen-1-explore-cy", "cy", "Failed", kind="explore"),
            step("gen-1-evaluate", "judge", output={"scores": [2, 6]}, kind="evaluate"),
            step("gen-2-explore-al", "al", kind="explore"),
            step("gen-2-explore-bo", "bo", kind="explore"),
            step("gen-2-evaluate", "judge", output={"scores": [5, 4]}, kind="evaluate"),
            step("gen-3-explore-al", "al", "Running", kind="explore"),
        ),
        {"best": "name", "score": 0.6, "generations": 2},
    )
    assert drawn["kind"] == "generations" and drawn["targetScore"] == 0.9 and drawn["maxGenerations"] == 5
    gens = drawn["generations"]
    assert gens[0]["scores"] == [{"agent": "al", "score": 0.2}, {"agent": "bo", "score": 0.6}]
    assert [(g["generation"], g["best"], g["bestSoFar"]) for g in gens] == [
        (1, 0.6, 0.6),
        (2, 0.5, 0.6),
        (3, None, 0.6),
    ]
    assert gens[0]["explorers"][2] == {"agent": "cy", "state": "Failed"}
    assert gens[2]["evaluation"] == "Pending" and drawn["best"] == {"score": 0.6, "solution": "name"}


def test_market_tables_every_bid_by_round_and_marks_the_winner_of_the_round_that_sold() -> None:
    spec = {"strategy": "market", "market": {"tasks": [{"name": "summary"}, {"name": "facts-2"}], "reservePrice": 0.3}}
    drawn = picture(
        spec,
        steps(
            step("auction-summary-1-bid-a", "a", output={"price": 0.5, "estimatedSeconds": 4}, kind="bid"),
            step("auction-summary-1-bid-b", "b", output={"decline": True}, kind="bid"),
            step("auction-summary-2-bid-a", "a", output={"price": 0.4}, kind="bid"),
            step("auction-summary-2-bid-b", "b", "Failed", kind="bid"),
            step("task-summary", "a"),
            # A task named with a dash and a number: its bids are still its own.
            step("auction-facts-2-1-bid-c", "c", output={"price": 0.1}, kind="bid"),
        ),
        {"summary": {"output": "s", "agent": "a", "price": 0.4, "score": 0.7, "round": 2}},
    )
    assert drawn["kind"] == "auctions" and drawn["reservePrice"] == 0.3
    summary, facts = drawn["auctions"]
    rows = [(b["round"], b["agent"], b["price"], b["declined"], b["answered"], b["winner"]) for b in summary["bids"]]
    assert rows == [
        (1, "a", 0.5, False, True, False),
        (1, "b", None, True, True, False),
        (2, "a", 0.4, False, True, True),
        (2, "b", None, False, False, False),
    ]
    assert (summary["winner"], summary["price"], summary["score"], summary["rounds"]) == ("a", 0.4, 0.7, [1, 2])
    assert summary["bids"][0]["seconds"] == 4 and summary["execution"]["state"] == "Succeeded"
    assert [b["agent"] for b in facts["bids"]] == ["c"] and facts["winner"] is None


def test_market_with_a_planner_and_an_integrator_tables_the_planned_tasks() -> None:
    spec = {"strategy": "market", "market": {"planner": "p", "integrator": "i"}}
    bids = (
        step("plan", "p", kind="plan"),
        step("auction-code-1-bid-a", "a", output={"price": 0.2, "estimatedSeconds": 1}, kind="bid"),
        step("task-code", "a"),
    )
    # While it runs, the tasks come from the steps; once done, from the sales the result keeps under "tasks".
    running = picture(spec, steps(*bids), None)
    assert [a["task"] for a in running["auctions"]] == ["code"] and running["auctions"][0]["winner"] == "a"
    sale = {"output": "x", "agent": "a", "price": 0.2, "score": 0.9, "round": 1}
    done = picture(spec, steps(*bids), {"answer": "all of it", "tasks": {"code": sale}})
    assert [(a["task"], a["winner"], a["price"]) for a in done["auctions"]] == [("code", "a", 0.2)]


def test_peer_to_peer_puts_each_rounds_reviews_in_a_matrix_with_means_and_what_was_applied() -> None:
    spec = {"strategy": "peerToPeer", "peerToPeer": {"maxRounds": 3, "minScore": 0.4}}
    drawn = picture(
        spec,
        steps(
            step("round-1-propose-x", "x", kind="propose"),
            step("round-1-propose-a-by-b", "a-by-b", kind="propose"),
            # Names may hold "-by-": the reviewer is the step's agent, the author what is left.
            step("round-1-review-x-by-a-by-b", "a-by-b", output={"score": 8, "comment": "clearer"}, kind="review"),
            step("round-1-review-a-by-b-by-x", "x", output={"score": 3, "comment": "vague"}, kind="review"),
            step("round-2-propose-x", "x", "Failed", kind="propose"),
        ),
        {
            "solution": {},
            "score": 0.8,
            "rounds": 2,
            "applied": [{"round": 1, "applied": [{"author": "x", "score": 0.8}]}],
        },
    )
    assert drawn["kind"] == "rounds" and drawn["maxRounds"] == 3 and drawn["score"] == 0.8
    first, second = drawn["rounds"]
    assert [(r["author"], r["reviewer"], r["score"]) for r in first["reviews"]] == [
        ("a-by-b", "x", 0.3),  # the review contract's 0-10 score, read as 0-1
        ("x", "a-by-b", 0.8),
    ]
    assert first["means"] == {"a-by-b": 0.3, "x": 0.8} and first["applied"] == ["x"]
    assert second["proposals"] == [{"author": "x", "state": "Failed"}] and second["applied"] == []


def test_central_command_lists_the_plan_with_who_was_assigned_and_who_ran_it() -> None:
    spec = {"strategy": "centralCommand", "centralCommand": {"planner": "boss"}}
    plan = {
        "tasks": [
            {"name": "t1", "description": "find sources", "capabilities": ["research"]},
            {"name": "t2", "description": "write it up", "capabilities": []},
        ]
    }
    views = steps(step("plan", "boss", output=plan, kind="plan"), step("task-t1", "r2"))
    drawn = picture(spec, views, {"results": {}, "assignments": {"t1": "r1", "t2": "w1"}})
    assert drawn["kind"] == "plan" and drawn["planner"]["agent"] == "boss"
    assert [
        (t["name"], t["capabilities"], t["assigned"], t["step"]["agent"], t["step"]["state"]) for t in drawn["tasks"]
    ] == [
        ("t1", ["research"], "r1", "r2", "Succeeded"),  # assigned r1, failed over to r2
        ("t2", [], "w1", None, "Pending"),
    ]
    # A plan cut for the page (a string) or not there yet: the tasks that ran still show.
    views["plan"]["output"] = '{"tasks": [... cut'
    assert [t["name"] for t in picture(spec, views, None)["tasks"]] == ["t1"]
    fixed = {"strategy": "centralCommand", "centralCommand": {"tasks": [{"name": "only"}]}}
    assert picture(fixed, {}, None)["planner"] is None


def test_hierarchical_shows_the_plan_each_teams_work_and_the_integration() -> None:
    spec = {"strategy": "hierarchical", "hierarchical": {"coordinator": "lead", "teams": ["research", "ops"]}}
    drawn = picture(
        spec,
        steps(
            step("plan", "lead", kind="plan"),
            step("team-research-1-research", "r"),
            step("team-research-1-analysis", "an", "Failed"),
            step("team-research-1-synthesis", "s", kind="synthesize"),
            step("team-research-2-research", "r", "Running"),
            step("team-ops-1-research", "o", "Running"),
        ),
        None,
    )
    assert drawn["kind"] == "teams" and drawn["plan"]["agent"] == "lead"
    research, ops = drawn["teams"]
    phases = ("research", "analysis", "synthesis")
    assert [[task[k]["state"] for k in phases] for task in research["tasks"]] == [
        ["Succeeded", "Failed", "Succeeded"],
        ["Running", "Pending", "Pending"],
    ]
    assert [[task[k]["state"] for k in phases] for task in ops["tasks"]] == [["Running", "Pending", "Pending"]]
    assert drawn["integrate"]["state"] == "Pending"
    # Before the plan, each team shows one pending task.
    waiting = picture(spec, steps(step("plan", "lead", "Running", kind="plan")), None)
    assert [len(t["tasks"]) for t in waiting["teams"]] == [1, 1]
