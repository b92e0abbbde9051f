"""The llm backend against a real model (llama-server, SmolLM2-135M-Instruct, temperature 0, fixed seed): every
task kind the strategies send comes back in its contract, with its usage counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from podium.agent.backends.llm import LLMRunner
from podium.dataplane.messages import Task
from podium.engine import contracts
from podium_localcluster.modelserver import LlamaServer as ModelServer
from tests.integration.agent.llm_cases import CASES, llm
from tests.support.fault_proxy import FaultProxy


def task(kind: str, data: Any, schema: dict[str, Any] | None) -> Task:
    return Task(id="t-1", kind=kind, input=data, namespace="ns", agent="a", output_schema=schema)


@pytest.fixture
async def runner(model_server: ModelServer) -> AsyncIterator[LLMRunner]:
    r = LLMRunner(llm(model_server.base_url, systemPrompt="You are a careful assistant. Be brief."))
    await r.start()
    yield r
    await r.close()


@pytest.mark.parametrize("case", list(CASES))
async def test_each_task_kind_returns_its_contract(runner: LLMRunner, case: str) -> None:
    contract, kind, data = CASES[case]
    out = await runner.run(task(kind, data, contract.schema))
    assert contract.error(out.output) is None, out.output
    assert out.prompt_tokens > 0 and out.completion_tokens > 0
    assert out.tokens == out.prompt_tokens + out.completion_tokens
    assert out.first_token_seconds is not None and out.first_token_seconds > 0  # streamed, first token timed
    assert runner.client.json_schema is True and runner.client.stream is True  # llama-server has both


async def test_readers_take_the_models_answers(runner: LLMRunner) -> None:
    contract, kind, data = CASES["evaluate"]
    scores = contracts.read_scores((await runner.run(task(kind, data, contract.schema))).output)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    contract, kind, data = CASES["plan-tasks"]
    planned = contracts.read_plan((await runner.run(task(kind, data, contract.schema))).output)
    assert planned and all(t.description and set(t.capabilities) <= {"research", "writing"} for t in planned)


async def test_a_task_without_a_schema_gets_a_free_answer(runner: LLMRunner) -> None:
    out = await runner.run(task("execute", {"task": "Name one color of the sky."}, None))
    assert isinstance(out.output, str) and out.output and out.completion_tokens > 0


async def test_one_connection_serves_many_requests(model_server: ModelServer) -> None:
    async with FaultProxy(model_server.url) as proxy:
        r = LLMRunner(llm(proxy.url, maxTokens=16))
        try:
            for _ in range(3):
                await r.run(task("execute", "Say hi.", None))
        finally:
            await r.close()
    assert len(proxy.seen) == 3 and len({s.peer_port for s in proxy.seen}) == 1
