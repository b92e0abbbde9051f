"""Each strategy end to end: real redis-server, real `podium agent` processes, the real bus."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.keys import AgentKeys
from podium.dataplane.state import SharedState
from podium.engine.directory import TeamInfo
from podium.engine.stats import StatsStore
from tests.integration.engine.fleet import Engine, Fleet, info, start_fleet


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from start_fleet(redis_url, Path(tmp_path_factory.mktemp("fleet")))


@pytest.fixture
async def engine(fleet: Fleet) -> AsyncIterator[Engine]:
    fleet.reset()
    client = aioredis.Redis.from_url(fleet.redis_url)
    bus = Bus(client)
    yield Engine(fleet, client, bus)
    await bus.close()
    await client.aclose()


# ------------------------------------------------------------------------------------------- pipeline
PIPELINE: dict[str, Any] = {
    "strategy": "pipeline",
    "input": {"doc": "hello"},
    "pipeline": {
        "stages": [
            {"name": "draft", "role": "writer", "input": {"style": "terse"}},
            {
                "name": "check",
                "agent": "w2",
                "retries": 1,
                "fallback": "w3",
                "validate": {"jsonSchema": {"type": "object", "required": ["agent", "input"]}},
            },
        ]
    },
}


async def test_pipeline_runs_stages_in_order_feeding_each_output_forward(engine: Engine) -> None:
    agents = [info("w1", "writer"), info("w2", "checker"), info("w3", "backup")]
    outcome, uid = await engine.run(PIPELINE, agents)
    assert outcome.phase == "Succeeded", outcome.message
    assert [(a, s) for a, _, s in engine.fleet.log(uid)] == [("w1", "stage-draft"), ("w2", "stage-check")]
    assert outcome.result["agent"] == "w2"
    assert outcome.result["input"] == {"agent": "w1", "input": {"doc": "hello", "style": "terse"}}
    assert [t.state for t in outcome.tasks] == ["Succeeded", "Succeeded"]


async def test_pipeline_invalid_output_is_retried_then_goes_to_the_fallback(engine: Engine) -> None:
    engine.fleet.set_mode("w2", output={"no": "schema"})
    agents = [info("w1", "writer"), info("w2", "checker"), info("w3", "backup")]
    outcome, uid = await engine.run(PIPELINE, agents)
    assert outcome.phase == "Succeeded", outcome.message
    assert [a for a, _, s in engine.fleet.log(uid) if s == "stage-check"] == ["w2", "w2", "w3"]
    assert outcome.result["agent"] == "w3"
    check = next(t for t in outcome.tasks if t.step == "stage-check")
    assert check.attempts == 3 and check.agent == "w3"


async def test_pipeline_fails_with_the_stage_error_when_fallback_fails_too(engine: Engine) -> None:
    engine.fleet.set_mode("w2", fail_always=True)
    engine.fleet.set_mode("w3", fail_always=True)
    agents = [info("w1", "writer"), info("w2", "checker", priority="critical"), info("w3", "backup")]
    outcome, _ = await engine.run(PIPELINE, agents)
    assert outcome.phase == "Failed"
    assert outcome.reason == "TaskFailed"
    assert outcome.message.startswith("stage 'check' failed: ") and "w3: " in outcome.message


async def test_a_stage_that_never_produces_valid_output_fails_the_run_naming_it(engine: Engine) -> None:
    engine.fleet.set_mode("w2", output={"no": "schema"})
    engine.fleet.set_mode("w3", output={"still": "no"})
    agents = [info("w1", "writer"), info("w2", "checker"), info("w3", "backup")]  # important: the default
    outcome, uid = await engine.run(PIPELINE, agents)
    assert (outcome.phase, outcome.reason, outcome.degraded) == ("Failed", "TaskFailed", False)
    why = "the answer does not honour the task's output schema: missing fields 'agent', 'input'"
    assert outcome.message == f"stage 'check' failed: w2: {why} (2 times); w3: {why} (2 times)"
    assert outcome.result["agent"] == "w1"  # the partial result is the last valid output, marked as such by Failed
    assert [a for a, _, s in engine.fleet.log(uid) if s == "stage-check"] == ["w2", "w2", "w3", "w3"]


async def test_a_stage_ranks_its_agents_by_its_own_weights(engine: Engine) -> None:
    # w2 is the better python hand but failed its last four tasks: the default weights (0.4 load, 0.4 capability,
    # 0.2 recent success) pick w2, this stage's (recent success only) pick w1.
    stats = StatsStore(engine.redis, engine.fleet.namespace)
    for _ in range(4):
        await stats.record("w2", False, 10.0, None)
    agents = [info("w1", caps={"python": 0.5}), info("w2", caps={"python": 0.9})]
    stage = {"name": "code", "capability": "python"}
    spec = {"strategy": "pipeline", "input": "x", "pipeline": {"stages": [stage]}}
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded" and engine.fleet.log(uid)[0][0] == "w2"
    stage["weights"] = {"load": 0, "capability": 0, "success": 1}
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded" and engine.fleet.log(uid)[0][0] == "w1"


async def test_a_stage_with_on_failure_skip_is_skipped_and_the_run_degraded(engine: Engine) -> None:
    engine.fleet.set_mode("w2", fail_always=True)
    engine.fleet.set_mode("w3", fail_always=True)
    agents = [info("w1", "writer"), info("w2", "checker", priority="optional"), info("w3", "backup")]
    spec = copy.deepcopy(PIPELINE)
    spec["pipeline"]["stages"][1]["onFailure"] = "skip"
    outcome, _ = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded" and outcome.degraded
    assert outcome.result["agent"] == "w1"  # the draft, passed through
    assert any(n.startswith("stage 'check' skipped (onFailure: skip)") for n in outcome.notes), outcome.notes
    # A critical agent's stage fails the run even with skip: the run cannot do without it.
    critical = [info("w1", "writer"), info("w2", "checker", priority="critical"), info("w3", "backup")]
    outcome, _ = await engine.run(spec, critical)
    assert outcome.phase == "Failed" and "stage 'check'" in outcome.message


# ------------------------------------------------------------------------------------------- hierarchical
async def test_hierarchical_teams_work_their_tasks_in_order_then_the_coordinator_integrates(engine: Engine) -> None:
    engine.fleet.set_mode("w1", plan={"assignments": {"alpha": ["part A1", "part A2"], "beta": ["part B"]}})
    agents = [
        info("w1", "coordinator"),
        info("w2", "researcher"),
        info("w3", "analyzer"),
        info("w4", "researcher"),
        info("w5", "analyzer"),
        info("w6", "lead"),
    ]
    teams = (TeamInfo("alpha", ("w2", "w3", "w6"), lead="w6"), TeamInfo("beta", ("w4", "w5", "w6"), lead="w6"))
    spec = {
        "strategy": "hierarchical",
        "input": "build it",
        "hierarchical": {"coordinator": "w1", "teams": ["alpha", "beta"]},
    }
    outcome, uid = await engine.run(spec, agents, teams)
    assert outcome.phase == "Succeeded" and not outcome.degraded, outcome.message
    log = engine.fleet.log(uid)
    steps = [s for _, _, s in log]
    assert steps[0] == "plan" and steps[-1] == "integrate"
    for team, n, research, analysis in (("alpha", 1, "w2", "w3"), ("alpha", 2, "w2", "w3"), ("beta", 1, "w4", "w5")):
        assert (research, "execute", f"team-{team}-{n}-research") in log
        assert (analysis, "execute", f"team-{team}-{n}-analysis") in log
        assert steps.index(f"team-{team}-{n}-synthesis") > max(
            steps.index(f"team-{team}-{n}-research"), steps.index(f"team-{team}-{n}-analysis")
        )
    # A team's tasks run in order: its second task starts after its first one's synthesis.
    assert steps.index("team-alpha-2-research") > steps.index("team-alpha-1-synthesis")
    assert outcome.result == {"answer": "synthesis by w1 of input, plan, teams"}
    assert engine.fleet.input(uid, "team-alpha-2-synthesis")["task"] == "part A2"
    assert engine.fleet.input(uid, "team-beta-1-research")["task"] == "part B"
    integrated = engine.fleet.input(uid, "integrate")["teams"]
    assert integrated["alpha"] == [{"answer": "synthesis by w6 of analysis, input, research, task, team"}] * 2
    assert len(outcome.tasks) == 1 + 3 * 3 + 1 and all(t.state == "Succeeded" for t in outcome.tasks)


async def test_a_team_maps_its_own_roles_to_research_analysis_and_synthesis(engine: Engine) -> None:
    engine.fleet.set_mode("w1", plan={"assignments": {"dev": ["build the parser"]}})
    agents = [info("w1", "coordinator"), info("w2", "coder"), info("w3", "tester"), info("w4", "reviewer")]
    roles = (("research", "coder"), ("analysis", "tester"), ("synthesis", "reviewer"))
    dev = TeamInfo("dev", ("w2", "w3", "w4"), roles=roles)
    spec = {"strategy": "hierarchical", "input": "a parser", "hierarchical": {"coordinator": "w1", "teams": ["dev"]}}
    outcome, uid = await engine.run(spec, agents, (dev,))
    assert outcome.phase == "Succeeded" and not outcome.degraded, outcome.message
    assert {(a, s) for a, _, s in engine.fleet.log(uid)} >= {
        ("w2", "team-dev-1-research"),
        ("w3", "team-dev-1-analysis"),
        ("w4", "team-dev-1-synthesis"),
    }
    # Without the map the same team has no researcher or analyst: it is lost, and the run says how to fix it.
    unmapped = TeamInfo("dev", ("w2", "w3", "w4"), lead="w4")
    outcome, _ = await engine.run(spec, agents, (unmapped,))
    assert outcome.phase == "Failed" and "map its roles in the Team's spec.roles" in outcome.message


# ------------------------------------------------------------------------------------------- swarm
async def test_swarm_feeds_the_best_back_and_stops_at_the_target_score(engine: Engine) -> None:
    engine.fleet.set_mode("w1", gain=0.1)
    engine.fleet.set_mode("w2", gain=0.2)
    agents = [info("w1", "explorer"), info("w2", "explorer"), info("w3", "evaluator")]
    spec = {"strategy": "swarm", "swarm": {"maxGenerations": 20, "topK": 2, "targetScore": 0.6}}
    outcome, _ = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded", outcome.message
    # Each generation builds on the best so far: 0.2, 0.4, 0.6 -> target reached in generation 3.
    assert outcome.result["generations"] == 3
    assert outcome.result["score"] == pytest.approx(0.6)
    assert outcome.result["best"] == "value=0.6 by=w2"
    assert len(outcome.result["knowledge"]) == 2
    # The top-k are shared knowledge: in the orchestration's shared state, for agents and people to read.
    knowledge, version = await SharedState(engine.redis, engine.fleet.namespace, "orch").get("swarm/knowledge")
    assert knowledge == outcome.result["knowledge"] and version == 3


async def test_swarm_stops_on_convergence(engine: Engine) -> None:
    engine.fleet.set_mode("w1", gain=0.0)
    agents = [info("w1", "explorer"), info("w3", "evaluator")]
    spec = {"strategy": "swarm", "swarm": {"maxGenerations": 50, "convergence": {"threshold": 0.01, "patience": 2}}}
    outcome, _ = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded"
    assert outcome.result["generations"] == 3


async def test_runaway_swarm_is_stopped_by_max_tasks(engine: Engine) -> None:
    engine.fleet.set_mode("w1", gain=0.001)
    agents = [info("w1", "explorer"), info("w3", "evaluator")]
    spec = {
        "strategy": "swarm",
        "swarm": {"maxGenerations": 1000, "convergence": {"threshold": 0.0, "patience": 100}},
        "limits": {"maxTasks": 9},
    }
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Failed" and outcome.reason == "BudgetExceeded"
    assert "maxTasks used 9 of 9" in outcome.message
    assert len(engine.fleet.log(uid)) == 9
    assert outcome.result is not None  # the best solution found before the stop


async def test_runaway_swarm_is_stopped_by_timeout(engine: Engine) -> None:
    engine.fleet.set_mode("w1", gain=0.001, sleep=0.3)
    agents = [info("w1", "explorer"), info("w3", "evaluator")]
    spec = {
        "strategy": "swarm",
        "swarm": {"maxGenerations": 1000, "convergence": {"threshold": 0.0, "patience": 100}},
        "limits": {"timeoutSeconds": 2},
    }
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Failed" and outcome.reason == "BudgetExceeded"
    assert "timeoutSeconds" in outcome.message
    assert len(engine.fleet.log(uid)) < 15


async def test_a_step_that_fails_the_run_stops_the_steps_running_beside_it(engine: Engine) -> None:
    """A critical explorer's failure fails the run while the other explorer still works: that step stops with the
    run, so nothing of the run is recorded after it reported its end (and a deleted run's keys stay purged)."""
    engine.fleet.set_mode("w1", fail_always=True)
    engine.fleet.set_mode("w2", sleep=1.5)
    agents = [info("w1", "explorer", priority="critical", retries=0), info("w2", "explorer"), info("w3", "evaluator")]
    outcome, _ = await engine.run({"strategy": "swarm", "swarm": {"maxGenerations": 3}}, agents)
    assert (outcome.phase, outcome.reason) == ("Failed", "TaskFailed"), outcome.message
    assert "w1: always fails" in outcome.message
    cancelled = [(t.step, t.state, t.error) for t in outcome.tasks if t.agent == "w2"]
    assert cancelled == [("gen-1-explore-w2", "Cancelled", "the run ended (TaskFailed) before this task did")]
    await asyncio.sleep(2.5)  # w2 answers meanwhile
    events = await engine.bus.history(orchestration=f"{engine.fleet.namespace}/orch", limit=1000)
    assert events[-1].type == "run.finished", [(e.type, e.payload.get("step")) for e in events]
    assert not [e for e in events if e.type == "task.finished" and e.payload["agent"] == "w2"]


# ------------------------------------------------------------------------------------------- eventDriven
EVENTS = {
    "strategy": "eventDriven",
    "input": "data",
    "eventDriven": {
        "tasks": [
            {"name": "fetch", "agents": ["w1"]},
            {"name": "lint", "agents": ["w2", "w3"], "dependsOn": ["fetch"]},
            {"name": "test", "role": "tester", "dependsOn": ["fetch"]},
            {"name": "report", "agents": ["w5"], "dependsOn": ["lint", "test"]},
        ],
        "synthesizer": "w6",
    },
}
EVENT_AGENTS = [info("w1"), info("w2"), info("w3"), info("w4", "tester"), info("w5"), info("w6")]


async def test_event_driven_runs_dependents_after_their_dependencies_and_fans_out(engine: Engine) -> None:
    outcome, uid = await engine.run(EVENTS, EVENT_AGENTS)
    assert outcome.phase == "Succeeded", outcome.message
    steps = [s for _, _, s in engine.fleet.log(uid)]
    assert steps[0] == "task-fetch"
    assert {"task-lint-w2", "task-lint-w3", "task-test"} == set(steps[1:4])
    # The fanned-out task's successes are synthesised into its one output, which its dependents see.
    assert steps.index("task-lint-synthesize") > max(steps.index("task-lint-w2"), steps.index("task-lint-w3"))
    assert steps[-2:] == ["task-report", "synthesize"]
    assert set(engine.fleet.input(uid, "task-lint-synthesize")["results"]) == {"w2", "w3"}
    lint = {"answer": "synthesis by w6 of input, results, task"}
    assert engine.fleet.input(uid, "task-report")["upstream"]["lint"] == lint
    results = engine.fleet.input(uid, "synthesize")["results"]
    assert outcome.result == {"answer": "synthesis by w6 of input, results"}
    assert results["lint"] == lint and set(results["report"]["input"]["upstream"]) == {"lint", "test"}
    events = await engine.bus.history(orchestration=f"{engine.fleet.namespace}/orch", limit=1000)
    assert events[-1].type == "run.finished" and events[-1].payload["phase"] == "Succeeded"
    assert {e.payload["step"] for e in events if e.type == "task.finished"} >= {"task-fetch", "synthesize"}
    # The pattern's events, in the order the graph went.
    created = [e.payload["task"] for e in events if e.type == "task.created"]
    completed = [e.payload["task"] for e in events if e.type == "task.completed"]
    assert created[0] == completed[0] == "fetch" and sorted(created) == sorted(completed) == sorted(
        ["fetch", "lint", "test", "report"]
    )
    available = [e.payload["agents"] for e in events if e.type == "agent.available"]
    assert ["w2", "w3"] in available and ["w5"] in available
    assert not [e for e in events if e.type in ("workflow.failed", "task.no_agents_available")]


async def test_event_driven_keeps_successes_when_some_agents_of_a_task_fail(engine: Engine) -> None:
    engine.fleet.set_mode("w3", fail_always=True)
    outcome, uid = await engine.run(EVENTS, EVENT_AGENTS)
    assert outcome.phase == "Succeeded" and outcome.degraded
    assert set(engine.fleet.input(uid, "task-lint-synthesize")["results"]) == {"w2"}


async def test_a_fan_out_of_critical_agents_that_all_fail_fails_the_run(engine: Engine) -> None:
    engine.fleet.set_mode("w2", fail_always=True)
    engine.fleet.set_mode("w3", fail_always=True)
    agents = [info("w1"), info("w2", priority="critical"), info("w3"), info("w4", "tester"), info("w5"), info("w6")]
    outcome, _ = await engine.run(EVENTS, agents)
    assert (outcome.phase, outcome.reason) == ("Failed", "TaskFailed")
    assert outcome.message.startswith("task 'lint' (all 2 agents) failed: ")
    events = await engine.bus.history(orchestration=f"{engine.fleet.namespace}/orch", limit=1000)
    failed = [e.payload for e in events if e.type == "workflow.failed"]
    assert [f["task"] for f in failed] == ["lint"]
    # The same failure with important agents only loses the task and what depends on it: degraded.
    outcome, _ = await engine.run(EVENTS, EVENT_AGENTS)
    assert outcome.phase == "Succeeded" and outcome.degraded


async def test_event_driven_skips_dependents_of_a_failed_task_and_fails_only_if_all_fail(engine: Engine) -> None:
    engine.fleet.set_mode("w4", fail_always=True)
    outcome, _ = await engine.run(EVENTS, EVENT_AGENTS)
    assert outcome.phase == "Succeeded" and outcome.degraded
    states = {t.step: t.state for t in outcome.tasks}
    assert states["task-test"] == "Failed" and states["task-report"] == "Skipped"
    engine.fleet.set_mode("w1", fail_always=True)
    outcome, _ = await engine.run(EVENTS, EVENT_AGENTS)
    assert outcome.phase == "Failed" and "every task failed" in outcome.message


# ------------------------------------------------------------------------------------------- centralCommand
async def test_central_command_assigns_each_task_to_the_most_capable_agent(engine: Engine) -> None:
    plan = {
        "tasks": [
            {"name": "code", "description": "write it", "capabilities": ["python"]},
            {"name": "audit", "description": "check it", "capabilities": ["security"]},
        ]
    }
    engine.fleet.set_mode("w1", plan=plan)
    agents = [
        info("w1", "planner"),
        info("w2", caps={"python": 0.9, "security": 0.1}),
        info("w3", caps={"python": 0.2, "security": 0.9}),
        info("w4", caps={"go": 1.0}),
    ]
    spec = {"strategy": "centralCommand", "input": "ship", "centralCommand": {"planner": "w1"}}
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded", outcome.message
    assert outcome.result["assignments"] == {"code": "w2", "audit": "w3"}
    assert ("w2", "execute", "task-code") in engine.fleet.log(uid)
    assert ("w3", "execute", "task-audit") in engine.fleet.log(uid)
    assert engine.fleet.input(uid, "task-code") == {"input": "ship", "task": "code", "description": "write it"}


async def test_central_command_spreads_equal_work_and_fails_over(engine: Engine) -> None:
    engine.fleet.set_mode("w2", fail_always=True)
    agents = [info("w2", retries=0), info("w3"), info("w4")]
    spec = {
        "strategy": "centralCommand",
        "centralCommand": {"tasks": [{"name": f"t{i}"} for i in range(3)]},
    }
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded", outcome.message
    assert sorted(outcome.result["assignments"].values()) == ["w2", "w3", "w4"]  # one each
    assert {a for a, _, _ in engine.fleet.log(uid) if a != "w2"} <= {"w3", "w4"}
    assert len(outcome.result["results"]) == 3  # w2's task moved on to the next best agent


# ------------------------------------------------------------------------------------------- peerToPeer
async def test_peer_to_peer_applies_reviewed_proposals_until_converged(engine: Engine) -> None:
    agents = [info("w1"), info("w2"), info("w3")]
    spec = {"strategy": "peerToPeer", "input": {"base": True}, "peerToPeer": {"maxRounds": 5, "applyTop": 2}}
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded", outcome.message
    # Every review scores 0.8: round 2 does not move the score, so it converges there.
    assert outcome.result["rounds"] == 2
    kinds = [k for _, k, s in engine.fleet.log(uid) if s.startswith("round-1-")]
    assert kinds.count("propose") == 3 and kinds.count("review") == 6
    assert outcome.result["solution"] == "w1 in round 2"  # ties go to the first author
    assert [len(r["applied"]) for r in outcome.result["applied"]] == [2, 2]


async def test_peer_to_peer_applies_nothing_below_min_score_and_says_so(engine: Engine) -> None:
    for w in ("w1", "w2", "w3"):
        engine.fleet.set_mode(w, score=0.2)
    spec = {"strategy": "peerToPeer", "input": {"base": True}, "peerToPeer": {"maxRounds": 5}}
    outcome, _ = await engine.run(spec, [info("w1"), info("w2"), info("w3")])
    assert outcome.phase == "Succeeded" and not outcome.degraded  # the peers judged: no proposal was good enough
    assert outcome.result["solution"] == {"base": True} and outcome.result["rounds"] == 1
    assert outcome.notes == [
        "round 1: no proposal reached minScore 0.5 (best mean 0.20); the result is the input unchanged"
    ]


async def test_peer_to_peer_with_no_usable_review_is_not_a_success(engine: Engine) -> None:
    for w in ("w1", "w2", "w3"):
        engine.fleet.set_mode(w, output={"solution": f"by {w}"})  # a proposal, and a "review" without a score
    spec = {"strategy": "peerToPeer", "input": "draft", "peerToPeer": {"maxRounds": 3}}
    outcome, _ = await engine.run(spec, [info("w1", retries=0), info("w2", retries=0), info("w3", retries=0)])
    assert (outcome.phase, outcome.reason) == ("Failed", "StrategyFailed")
    assert outcome.message.startswith("round 1: no review of a proposal came back; nothing usable: ")
    assert "the answer does not honour the task's output schema" in outcome.message


# ------------------------------------------------------------------------------------------- market
async def test_market_awards_the_best_bid_and_updates_reputation(engine: Engine) -> None:
    engine.fleet.set_mode("w1", price=5.0, seconds=10)
    engine.fleet.set_mode("w2", price=1.0, seconds=10)
    engine.fleet.set_mode("w3", decline=True)
    agents = [info("w1", caps={"python": 1.0}), info("w2", caps={"python": 0.8}), info("w3", caps={"python": 1.0})]
    spec = {"strategy": "market", "input": "job", "market": {"tasks": [{"name": "job", "capabilities": ["python"]}]}}
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded", outcome.message
    assert outcome.result["job"]["agent"] == "w2" and outcome.result["job"]["price"] == 1.0
    assert ("w2", "execute", "task-job") in engine.fleet.log(uid)
    rep = await engine.redis.hget(AgentKeys(engine.fleet.namespace, "w2").stats, "reputation")
    assert rep is not None and float(rep) > 0.5


async def test_market_chooses_the_faster_bid_when_prices_tie(engine: Engine) -> None:
    engine.fleet.set_mode("w1", price=1.0, seconds=30)
    engine.fleet.set_mode("w2", price=1.0, seconds=3)
    agents = [info("w1"), info("w2")]
    outcome, _ = await engine.run({"strategy": "market", "input": "job"}, agents)
    assert outcome.phase == "Succeeded", outcome.message
    assert next(t.agent for t in outcome.tasks if t.step == "task-task") == "w2"
    # ... and the other way round: not the name, the time decides.
    engine.fleet.set_mode("w1", price=1.0, seconds=3)
    engine.fleet.set_mode("w2", price=1.0, seconds=30)
    outcome, _ = await engine.run({"strategy": "market", "input": "job"}, agents)
    assert next(t.agent for t in outcome.tasks if t.step == "task-task") == "w1"


async def test_market_decomposes_the_project_and_integrates_the_results(engine: Engine) -> None:
    plan = {
        "tasks": [
            {"name": "code", "description": "write it", "capabilities": ["python"]},
            {"name": "docs", "description": "explain it", "capabilities": ["writing"]},
        ]
    }
    engine.fleet.set_mode("w1", plan=plan)
    engine.fleet.set_mode("w2", price=1.0)
    engine.fleet.set_mode("w3", price=1.0)
    agents = [info("w1", "planner"), info("w2", caps={"python": 1.0}), info("w3", caps={"writing": 1.0}), info("w4")]
    spec = {"strategy": "market", "input": "a tool", "market": {"planner": "w1", "integrator": "w4"}}
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded" and not outcome.degraded, outcome.message
    assert outcome.result["answer"] == "synthesis by w4 of input, results"
    assert {name: sale["agent"] for name, sale in outcome.result["tasks"].items()} == {"code": "w2", "docs": "w3"}
    assert engine.fleet.input(uid, "task-docs")["description"] == "explain it"
    assert set(engine.fleet.input(uid, "integrate")["results"]) == {"code", "docs"}
    steps = [s for _, _, s in engine.fleet.log(uid)]
    assert steps[0] == "plan" and steps[-1] == "integrate"
    # Bidders are the agents with the task's capability: the planner and the integrator were not asked.
    assert {s for s in steps if s.startswith("auction-code")} == {"auction-code-1-bid-w2"}
    assert engine.progress[-1].text == f"{len(outcome.tasks)}/{len(outcome.tasks)}"


async def test_market_relaxes_the_reserve_once_then_gives_up(engine: Engine) -> None:
    engine.fleet.set_mode("w1", price=1.4)
    agents = [info("w1")]
    spec = {"strategy": "market", "input": "x", "market": {"reservePrice": 1.0, "relaxFactor": 1.5}}
    outcome, uid = await engine.run(spec, agents)
    assert outcome.phase == "Succeeded" and outcome.result == {
        "agent": "w1",
        "input": {"input": "x", "task": "task", "price": 1.4},
    }
    assert [s for _, k, s in engine.fleet.log(uid) if k == "bid"] == ["auction-task-1-bid-w1", "auction-task-2-bid-w1"]
    engine.fleet.set_mode("w1", price=9.0)
    outcome, _ = await engine.run(spec, agents)
    assert outcome.phase == "Failed" and "no acceptable bid after re-auction" in outcome.message


# ------------------------------------------------------------------------------------------- progress
PROGRESS_RUNS: dict[str, tuple[dict[str, Any], list[Any], tuple[TeamInfo, ...]]] = {
    "pipeline": (PIPELINE, [info("w1", "writer"), info("w2", "checker"), info("w3", "backup")], ()),
    "hierarchical": (
        {"strategy": "hierarchical", "input": "x", "hierarchical": {"coordinator": "w1", "teams": ["alpha", "beta"]}},
        [info("w1"), info("w2", "researcher"), info("w3", "analyzer"), info("w4", "researcher"), info("w5", "lead")],
        (TeamInfo("alpha", ("w2", "w3"), lead="w5"), TeamInfo("beta", ("w4",), lead="w5")),  # beta: no analyst
    ),
    "swarm": (
        {"strategy": "swarm", "swarm": {"maxGenerations": 3, "targetScore": 0.2}},
        [info("w1", "explorer"), info("w2", "explorer"), info("w3", "evaluator")],
        (),
    ),
    "eventDriven": (EVENTS, EVENT_AGENTS, ()),
    "centralCommand": (
        {"strategy": "centralCommand", "centralCommand": {"tasks": [{"name": "a"}, {"name": "b"}]}},
        [info("w1"), info("w2")],
        (),
    ),
    "peerToPeer": (
        {"strategy": "peerToPeer", "input": "d", "peerToPeer": {"maxRounds": 4}},
        [info("w1"), info("w2")],
        (),
    ),
    "market": (
        {"strategy": "market", "market": {"tasks": [{"name": "a", "capabilities": ["x"]}, {"name": "b"}]}},
        [info("w1", caps={"x": 1.0}), info("w2"), info("w3")],
        (),
    ),
}


@pytest.mark.parametrize("strategy", list(PROGRESS_RUNS))
async def test_a_successful_run_ends_with_every_announced_step_done(engine: Engine, strategy: str) -> None:
    spec, agents, teams = PROGRESS_RUNS[strategy]
    outcome, _ = await engine.run(spec, agents, teams)
    assert outcome.phase == "Succeeded", outcome.message
    last = engine.progress[-1]
    assert last.done == last.total == len(outcome.tasks), (last.text, [t.step for t in outcome.tasks])
    # Steps are announced only when they will run: the total never went past what was done.
    assert max(p.total for p in engine.progress) == last.total
