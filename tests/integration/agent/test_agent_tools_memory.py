"""`podium agent` processes with tools and memory: the real model (llama-server), a real MCP server started by the
agent, real Redis, and the agent logged in as its own ACL user (the rules the operator installs), so its memory
keys are reached only through what that user may do."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from podium.api.agent import AgentSpec
from podium.api.orchestration import OrchestrationSpec
from podium.cli.orchestrations import conversation_lines
from podium.dataplane.acl import agent_acl_rules
from podium.dataplane.bus import Bus
from podium.dataplane.keys import GROUP, AgentKeys
from podium.dataplane.memory import AgentMemory
from podium.dataplane.messages import BUDGET_SPENT, Result, Task
from podium.dataplane.toolcalls import TOOL_CALL_EVENT
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.journal import Journal
from podium.engine.runner import run_orchestration
from podium_localcluster.modelserver import MODEL_ALIAS
from podium_localcluster.modelserver import LlamaServer as ModelServer
from tests.integration.agent.conftest import StartAgent
from tests.support.fault_proxy import FaultProxy
from tests.support.wait import wait_for

VENV_BIN = Path(sys.executable).parent
DATE = {
    "type": "object",
    "properties": {
        "date": {"type": "string", "description": "the date, YYYY-MM-DD", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    },
    "required": ["date"],
    "additionalProperties": False,
}


def llm_spec(url: str, **extra: Any) -> dict[str, Any]:
    llm = {"model": MODEL_ALIAS, "baseURL": url, "temperature": 0, "seed": 42, "maxTokens": 120}
    return {"role": "assistant", "backend": {"llm": {**llm, "frequencyPenalty": 0.5}}, **extra}


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def proxy(model_server: ModelServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(model_server.url) as p:
        yield p


async def acl_env(admin: aioredis.Redis, namespace: str, agent: str) -> dict[str, str]:
    """The agent's own Redis user, as the operator makes it; the agent process logs in with it."""
    user, password = f"podium-agent:{namespace}/{agent}", uuid.uuid4().hex
    await Bus(admin).library()  # the operator loads the library; an agent's user may not
    await admin.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}", *agent_acl_rules(namespace, agent)
    )
    try:
        await admin.xgroup_create(AgentKeys(namespace, agent).inbox, GROUP, id="0", mkstream=True)
    except aioredis.ResponseError as exc:  # the group exists already: the same agent made twice
        if "BUSYGROUP" not in str(exc):
            raise
    return {"PODIUM_REDIS_USERNAME": user, "PODIUM_REDIS_PASSWORD": password}


def task(namespace: str, agent: str, data: Any, *, run: str, step: str, schema: Any = None, **meta: Any) -> Task:
    return Task(
        id=f"{run}:{step}:{uuid.uuid4().hex[:6]}",
        kind="execute",
        input=data,
        namespace=namespace,
        agent=agent,
        orchestration=f"{namespace}/demo",
        meta={"uid": run, "step": step, **meta},
        output_schema=schema,
    )


async def answer(bus: Bus, t: Task, wait: float = 60.0) -> Result:
    await bus.dispatch(t)
    result = await bus.wait_result(t, wait)
    assert result is not None, f"no result for {t.id}"
    return result


def shown(proxy: FaultProxy, index: int = -1) -> list[dict[str, Any]]:
    """The chat turns a request showed the model, system prompt left out."""
    return [m for m in proxy.seen[index].body["messages"] if m["role"] != "system"]


async def test_an_agent_reports_its_tool_calls_and_stops_its_loop_at_the_runs_budget(
    bus: Bus, namespace: str, start_agent: StartAgent, model_server: ModelServer, admin: aioredis.Redis
) -> None:
    stdio = {"command": str(VENV_BIN / "mcp-server-time"), "args": ["--local-timezone", "UTC"]}
    tools = {"servers": [{"name": "time", "stdio": stdio, "tools": ["get_current_time"]}], "calling": "schema"}
    spec = llm_spec(model_server.base_url, tools=tools, memory={"maxTokens": 0})
    start_agent("clock", spec, **await acl_env(admin, namespace, "clock"))

    question = {"question": "What is today's date in UTC?"}
    done = await answer(bus, task(namespace, "clock", question, run="r1", step="ask", schema=DATE))
    assert done.ok, done.error
    (call,) = [c for c in done.tool_calls if c["tool"] == "get_current_time"][:1]
    assert call["server"] == "time" and call["ok"] and '"datetime"' in call["result"]
    assert done.output["date"] == json.loads(call["result"])["datetime"][:10]
    assert done.tokens > 0
    # The agent's own history (its results stream) keeps the calls too.
    history = await bus.history(agent=(namespace, "clock"), limit=5)
    assert any(e.payload.get("tool_calls") for e in history if e.type == "result")

    budget = {"tokens": 150, "cost": None}
    stopped = await answer(bus, task(namespace, "clock", question, run="r2", step="ask", schema=DATE, budget=budget))
    assert not stopped.ok and stopped.error_type == BUDGET_SPENT
    assert "tool loop stopped" in (stopped.error or "") and "token budget is spent" in (stopped.error or "")
    assert stopped.tokens >= 150 and [c["tool"] for c in stopped.tool_calls] == ["get_current_time"]


async def test_within_a_run_the_agent_sees_its_own_earlier_turns_newest_first_within_its_tokens(
    bus: Bus, namespace: str, start_agent: StartAgent, proxy: FaultProxy, admin: aioredis.Redis
) -> None:
    start_agent("scribe", llm_spec(proxy.url, memory={"maxTokens": 80}), **await acl_env(admin, namespace, "scribe"))
    long_note = {"note": "The project is called Podium. " * 12}
    first = await answer(bus, task(namespace, "scribe", long_note, run="run-a", step="s1"))
    second = await answer(bus, task(namespace, "scribe", {"note": "The secret word is teal."}, run="run-a", step="s2"))
    assert first.ok and second.ok
    assert len(shown(proxy, 1)) == 1  # the run's first task: nothing to remember yet

    await answer(bus, task(namespace, "scribe", {"question": "What is the secret word?"}, run="run-a", step="s3"))
    turns = shown(proxy)
    # s2 fits in 80 tokens, s1 (about 120) does not: the newest turn is shown, the older one dropped.
    assert [m["role"] for m in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == "Note: The secret word is teal." and turns[1]["content"] == second.output
    assert "Podium" not in str(turns)

    # A retry of s3 does not see the answer given to s3 before; it sees s2 as before.
    await answer(bus, task(namespace, "scribe", {"question": "What is the secret word?"}, run="run-a", step="s3"))
    assert shown(proxy) == turns

    # Another run starts with nothing: the agent named no memory to carry across runs.
    await answer(bus, task(namespace, "scribe", {"question": "What is the secret word?"}, run="run-b", step="s1"))
    assert len(shown(proxy)) == 1


async def test_across_runs_only_a_named_memory_is_carried_capped_in_bytes_and_expiring(
    bus: Bus, namespace: str, start_agent: StartAgent, proxy: FaultProxy, admin: aioredis.Redis, redis_url: str
) -> None:
    memory = {"name": "notes", "ttlSeconds": 4, "maxBytes": 900, "maxTokens": 400}
    start_agent("keeper", llm_spec(proxy.url, memory=memory), **await acl_env(admin, namespace, "keeper"))
    store = AgentMemory(admin, namespace, "keeper")
    key = AgentKeys(namespace, "keeper").memory("notes")

    told = await answer(bus, task(namespace, "keeper", {"note": "My favourite colour is teal."}, run="run-1", step="s"))
    assert told.ok
    await answer(bus, task(namespace, "keeper", {"question": "What is my favourite colour?"}, run="run-2", step="s"))
    turns = shown(proxy)
    assert turns[0] == {"role": "user", "content": "Note: My favourite colour is teal."}
    assert turns[1] == {"role": "assistant", "content": told.output}
    assert 0 < await admin.pttl(key) <= 4000

    for n in range(3, 9):
        await answer(
            bus, task(namespace, "keeper", {"note": f"Fact number {n} is {'x' * 60}."}, run=f"run-{n}", step="s")
        )
    assert await store.size("notes") <= 900
    kept = await store.recall("notes")
    assert kept[0].run == "run-8" and all(t.run != "run-1" for t in kept)  # the oldest went first

    # Nothing written for the TTL: Redis drops the memory whole, and the next run starts with nothing.
    sync = redis.Redis.from_url(redis_url)
    try:
        wait_for("the named memory to expire", lambda: sync.exists(key) == 0, timeout=15, every=0.2)
    finally:
        sync.close()
    await answer(bus, task(namespace, "keeper", {"question": "What is my favourite colour?"}, run="run-9", step="s"))
    assert len(shown(proxy)) == 1


async def test_a_run_records_every_tool_call_in_its_history_and_a_token_budget_stops_it(
    bus: Bus, namespace: str, start_agent: StartAgent, model_server: ModelServer, admin: aioredis.Redis
) -> None:
    """The engine and a real agent: the run's history (what `podium run history` prints) has the agent's tool
    calls before its answer, and a run whose maxTokens the loop spends fails naming that limit."""
    stdio = {"command": str(VENV_BIN / "mcp-server-time"), "args": ["--local-timezone", "UTC"]}
    tools = {"servers": [{"name": "time", "stdio": stdio, "tools": ["get_current_time"]}], "calling": "schema"}
    raw = llm_spec(model_server.base_url, tools=tools, resilience={"timeoutSeconds": 60, "retry": {"limit": 1}})
    start_agent("clock", raw, **await acl_env(admin, namespace, "clock"))
    directory = AgentDirectory([AgentInfo.from_spec("clock", AgentSpec.model_validate(raw))])

    def pipeline(limits: dict[str, Any]) -> OrchestrationSpec:
        stage = {"name": "ask", "agent": "clock", "validate": {"jsonSchema": DATE}}
        return OrchestrationSpec.model_validate(
            {
                "strategy": "pipeline",
                "input": {"question": "What is today's date in UTC?"},
                "pipeline": {"stages": [stage]},
                "limits": {"timeoutSeconds": 120, **limits},
            }
        )

    ok = await run_orchestration(admin, directory, namespace, "when", "uid-ok", pipeline({}), bus=bus)
    assert ok.phase == "Succeeded", ok.message
    events = await bus.history(orchestration=f"{namespace}/when", limit=50)
    calls = [e for e in events if e.type == TOOL_CALL_EVENT]
    assert calls and calls[0].sender == "clock" and calls[0].payload["step"] == "stage-ask"
    told = json.loads(calls[0].payload["result"])["datetime"][:10]
    assert ok.result == {"date": told}
    entries = await Journal(admin, namespace, "when", "uid-ok").entries()
    lines = [line for _, line in conversation_lines(events, entries)]
    call_line = next(i for i, line in enumerate(lines) if "tool.call time/get_current_time(" in line)
    answer_line = next(i for i, line in enumerate(lines) if line.startswith("clock execute stage-ask [ok"))
    assert call_line < answer_line and '{"timezone": "UTC"}' in lines[call_line]

    stopped = await run_orchestration(
        admin, directory, namespace, "tight", "uid-tight", pipeline({"maxTokens": 200}), bus=bus
    )
    assert stopped.phase == "Failed" and "budget exceeded: maxTokens" in stopped.message, stopped.message
    tight = await bus.history(orchestration=f"{namespace}/tight", limit=50)
    assert [e.payload["tool"] for e in tight if e.type == TOOL_CALL_EVENT] == ["get_current_time"]
