"""Each strategy with `llm` agents on a real model: real `podium agent` processes, real Redis, llama-server with
SmolLM2-135M-Instruct at temperature 0 and a fixed seed. What a model this size can guarantee is asserted: the run
succeeds, every answer honours its contract (the engine checks each one), and tokens and cost are counted and
enforced."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.api.agent import Backoff, CircuitBreaker, Pricing, Resilience, Retry
from podium.dataplane.bus import Bus
from podium.dataplane.state import SharedState
from podium.engine.directory import AgentInfo, TeamInfo
from podium.engine.resilience import BreakerStore
from podium_localcluster.modelserver import MODEL_ALIAS as MODEL_NAME
from podium_localcluster.modelserver import LlamaServer as ModelServer
from tests.integration.engine.fleet import Engine, Fleet, start_fleet
from tests.support.fault_proxy import Fault, FaultProxy

# Per million tokens: large enough that a run's cost is visible in the figures.
PRICES = {"inputPerMillion": 100.0, "outputPerMillion": 300.0}
SYSTEM = "You are one agent of a small team. Do exactly what you are asked, briefly and on topic."
SUMMARY = {
    "type": "object",
    "properties": {"summary": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["summary"],
    "additionalProperties": False,
}


def llm_spec(url: str) -> dict[str, Any]:
    llm = {
        "model": MODEL_NAME,
        "baseURL": url,
        "temperature": 0.0,
        "seed": 42,
        "maxTokens": 400,
        "frequencyPenalty": 0.5,
    }
    return {"role": "worker", "backend": {"llm": {**llm, "systemPrompt": SYSTEM, "pricing": PRICES}}, "concurrency": 2}


def agent(
    name: str, role: str = "worker", *, caps: dict[str, float] | None = None, timeout: int = 180, **breaker: int
) -> AgentInfo:
    """The engine's view of an llm worker: a model on a shared 2-core machine gets a generous timeout."""
    resilience = Resilience(
        timeout_seconds=timeout,
        retry=Retry(limit=1, backoff=Backoff(initial_seconds=0.1, max_seconds=0.5)),
        circuit_breaker=CircuitBreaker(**{"failure_threshold": 5, "recovery_timeout_seconds": 60, **breaker}),
    )
    return AgentInfo(name=name, role=role, capabilities=caps or {}, resilience=resilience, pricing=Pricing())


@pytest.fixture(scope="module")
def fleet(redis_url: str, model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = Path(tmp_path_factory.mktemp("llm-fleet"))
    yield from start_fleet(redis_url, tmp, [f"w{i}" for i in range(1, 5)], llm_spec(model_server.base_url))


@pytest.fixture
async def engine(fleet: Fleet) -> AsyncIterator[Engine]:
    fleet.reset()
    client = aioredis.Redis.from_url(fleet.redis_url)
    bus = Bus(client)
    yield Engine(fleet, client, bus)
    await bus.close()
    await client.aclose()


def assert_counted(outcome: Any) -> None:
    """The run's tokens and cost are the sum of its tasks', and every task used the model."""
    assert outcome.tokens > 0 and outcome.tokens == sum(t.tokens for t in outcome.tasks)
    assert outcome.cost > 0 and outcome.cost == pytest.approx(sum(t.cost for t in outcome.tasks))
    worked = [t for t in outcome.tasks if t.state == "Succeeded" and t.kind != "bid"]
    assert worked and all(t.tokens > 0 for t in worked)


GOAL = {"goal": "Explain in two sentences why web caches make pages load faster"}

RUNS: dict[str, tuple[dict[str, Any], list[AgentInfo], tuple[TeamInfo, ...]]] = {
    "pipeline": (
        {
            "strategy": "pipeline",
            "input": {"text": "Redis is an in-memory data store used as a cache and a message broker."},
            "pipeline": {
                "stages": [
                    {"name": "draft", "role": "writer", "input": {"instruction": "Rewrite this for a beginner."}},
                    {"name": "summarise", "agent": "w2", "validate": {"jsonSchema": SUMMARY}},
                ]
            },
        },
        [agent("w1", "writer"), agent("w2", "editor")],
        (),
    ),
    "hierarchical": (
        {"strategy": "hierarchical", "input": GOAL, "hierarchical": {"coordinator": "w1", "teams": ["web"]}},
        [agent("w1", "coordinator"), agent("w2", "researcher"), agent("w3", "analyzer"), agent("w4", "synthesizer")],
        (TeamInfo("web", ("w2", "w3", "w4"), lead="w4"),),
    ),
    "swarm": (
        {
            "strategy": "swarm",
            "input": {"problem": "a short, memorable name for a tool that runs teams of AI agents"},
            "swarm": {"maxGenerations": 2, "topK": 2},
        },
        [agent("w1", "explorer"), agent("w2", "explorer"), agent("w3", "evaluator")],
        (),
    ),
    "eventDriven": (
        {
            "strategy": "eventDriven",
            "input": GOAL,
            "eventDriven": {
                "tasks": [
                    {"name": "facts", "agents": ["w1"], "input": {"instruction": "List two facts about web caches."}},
                    {"name": "explain", "agents": ["w2"], "dependsOn": ["facts"]},
                ],
                "synthesizer": "w3",
            },
        },
        [agent("w1"), agent("w2"), agent("w3", "synthesizer")],
        (),
    ),
    "centralCommand": (
        {"strategy": "centralCommand", "input": GOAL, "centralCommand": {"planner": "w1"}},
        [agent("w1", "planner"), agent("w2", caps={"research": 0.9}), agent("w3", caps={"writing": 0.8})],
        (),
    ),
    "peerToPeer": (
        {"strategy": "peerToPeer", "input": {"draft": "Podium runs agents"}, "peerToPeer": {"maxRounds": 1}},
        [agent("w1"), agent("w2")],
        (),
    ),
    "market": (
        {
            "strategy": "market",
            "input": {"text": "Caches keep copies of pages close to the reader."},
            "market": {"tasks": [{"name": "headline", "description": "Write a headline for the text."}]},
        },
        [agent("w1", caps={"writing": 0.9}), agent("w2", caps={"writing": 0.5})],
        (),
    ),
}


@pytest.mark.parametrize("strategy", list(RUNS))
async def test_each_strategy_succeeds_with_llm_agents(engine: Engine, strategy: str) -> None:
    spec, agents, teams = RUNS[strategy]
    outcome, _ = await engine.run(spec, agents, teams)
    assert outcome.phase == "Succeeded", outcome.message
    assert not outcome.degraded, outcome.notes
    assert outcome.result not in (None, "", {}, [])
    assert_counted(outcome)


async def test_max_tokens_stops_a_run_and_says_so(engine: Engine) -> None:
    spec, agents, _ = RUNS["swarm"]
    limited = {**spec, "swarm": {"maxGenerations": 20, "convergence": {"threshold": 0.0, "patience": 20}}}
    outcome, _ = await engine.run({**limited, "limits": {"maxTokens": 1500}}, agents)
    assert outcome.phase == "Failed" and outcome.reason == "BudgetExceeded"
    assert "budget exceeded: maxTokens used" in outcome.message and "of 1500" in outcome.message
    # Once the budget was spent nothing more went out: the tasks of the generation in flight are the last.
    used = int(outcome.message.split("used ")[1].split(" ")[0])
    assert used >= 1500 and outcome.tokens == used
    assert sum(1 for t in outcome.tasks if t.kind == "evaluate") < 20


async def test_max_cost_stops_a_run_and_says_so(engine: Engine) -> None:
    spec, agents, _ = RUNS["swarm"]
    limited = {**spec, "swarm": {"maxGenerations": 20, "convergence": {"threshold": 0.0, "patience": 20}}}
    outcome, _ = await engine.run({**limited, "limits": {"maxCost": 0.05}}, agents)
    assert outcome.phase == "Failed" and outcome.reason == "BudgetExceeded"
    assert "budget exceeded: maxCost used" in outcome.message and outcome.cost >= 0.05


async def test_an_llm_agent_writes_the_shared_state_keys_it_declares(
    redis_url: str, model_server: ModelServer, tmp_path: Path
) -> None:
    writer = llm_spec(model_server.base_url) | {"blackboard": {"read": ["notes"], "write": ["notes"]}}
    for fleet in start_fleet(redis_url, tmp_path, ["n1"], writer):
        client = aioredis.Redis.from_url(redis_url)
        bus = Bus(client)
        try:
            spec = {
                "strategy": "pipeline",
                "input": {"text": "Caches keep copies of pages close to the reader."},
                "blackboard": {"initial": {"notes": "nothing yet"}},
                "pipeline": {
                    "stages": [
                        {
                            "name": "note",
                            "agent": "n1",
                            "input": {"instruction": "Summarise the text in one sentence and store it in notes."},
                        }
                    ]
                },
            }
            reader = dataclasses.replace(agent("n1"), reads=("notes",))
            outcome, _ = await Engine(fleet, client, bus).run(spec, [reader])
            state = SharedState(client, fleet.namespace, "orch")
            changes = [c for c in await state.history("notes") if c.writer == "n1"]
            value, version = await state.get("notes")
        finally:
            await bus.close()
            await client.aclose()
    assert outcome.phase == "Succeeded", outcome.message
    # The model's write reached the blackboard through the engine, on top of the initial value it was shown...
    assert changes and changes[-1].old == "nothing yet" and version >= 2
    assert value == changes[-1].new and value not in (None, "", "nothing yet")
    # ...and the stage's answer is the answer alone, not the envelope the model was asked for.
    assert not (isinstance(outcome.result, dict) and "stateUpdates" in outcome.result), outcome.result
    assert outcome.result not in (None, "", {})


async def test_a_429_waits_its_retry_after_and_leaves_the_breaker_closed(
    redis_url: str, model_server: ModelServer, tmp_path: Path
) -> None:
    async with FaultProxy(model_server.url) as proxy:
        for fleet in start_fleet(redis_url, tmp_path, ["t1"], llm_spec(proxy.url)):
            # Retry-After 13 s does not fit in half of a 24 s task: the agent hands it back and the engine waits. (The
            # task's 24 s leave the real model room to answer the third attempt on a loaded machine; 5 s did not.)
            proxy.inject(Fault(status=429, headers={"Retry-After": "13"}, text="rate limited", times=2))
            client = aioredis.Redis.from_url(redis_url)
            bus = Bus(client)
            try:
                engine = Engine(fleet, client, bus)
                spec = {
                    "strategy": "pipeline",
                    "input": {"text": "Say hello to the team."},
                    "pipeline": {"stages": [{"name": "greet", "agent": "t1", "retries": 2}]},
                }
                outcome, _ = await engine.run(spec, [agent("t1", timeout=24, failure_threshold=1)])
                breaker = await BreakerStore(client, fleet.namespace).load("t1")
            finally:
                await bus.close()
                await client.aclose()
    assert outcome.phase == "Succeeded", outcome.message
    assert [s.status for s in proxy.seen] == [429, 429, 200]
    assert proxy.seen[1].at - proxy.seen[0].at >= 13.0 and proxy.seen[2].at - proxy.seen[1].at >= 13.0
    assert outcome.tasks[0].attempts == 3
    assert breaker.state == "closed" and breaker.failures == 0  # a threshold of 1 would have opened on an error


async def test_a_prompt_longer_than_the_models_context_is_not_retried_and_the_run_says_why(engine: Engine) -> None:
    """The model server refuses a request longer than its context (a 400), and would refuse the same request again:
    the agent gets no retry and its breaker is left alone (the agent is healthy), the fallback is tried, and the run
    fails naming the context size."""
    text = "Bread is made of flour, water and salt. " * 3000  # about 30,000 tokens; the model's context is 2,048
    spec = {
        "strategy": "pipeline",
        "input": {"text": text},
        "pipeline": {"stages": [{"name": "sum", "agent": "w1", "fallback": "w2", "retries": 2}]},
    }
    outcome, _ = await engine.run(spec, [agent("w1", failure_threshold=2), agent("w2", failure_threshold=2)])
    breakers = BreakerStore(engine.redis, engine.fleet.namespace)
    assert outcome.phase == "Failed", outcome.message
    assert "exceeds the available context size" in outcome.message, outcome.message
    (step,) = outcome.tasks
    assert step.attempts == 2  # one each: w1, then its fallback w2; not three each
    for name in ("w1", "w2"):
        breaker = await breakers.load(name)
        assert breaker.state == "closed" and breaker.failures == 0, (name, breaker)
