"""Faults between the llm backend and a real model, injected by a proxy in front of llama-server: throttling,
refused features, answers cut short or garbled, a server too slow. The answers themselves are the model's."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podium.agent.backends.base import TASK_DEADLINE, BackendError, InvalidOutput, Throttled
from podium.agent.backends.llm import LLMRunner
from podium.dataplane.bus import Bus
from podium.dataplane.messages import INVALID_OUTPUT, Task
from podium.engine import contracts
from podium_localcluster.modelserver import LlamaServer as ModelServer
from podium_localcluster.redis_server import free_port
from tests.integration.agent.conftest import StartAgent
from tests.integration.agent.llm_cases import CASES, llm
from tests.support.fault_proxy import Fault, FaultProxy, streamed, wants_schema

REVIEW, KIND, DATA = CASES["review"]


def review_task(**extra: Any) -> Task:
    return Task(id=f"t-{uuid.uuid4().hex[:6]}", kind=KIND, input=DATA, namespace="ns", agent="a", **extra)


def with_schema(**extra: Any) -> Task:
    return review_task(output_schema=REVIEW.schema, **extra)


@pytest.fixture
async def proxy(model_server: ModelServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(model_server.url) as p:
        yield p


@pytest.fixture
async def runner(proxy: FaultProxy) -> AsyncIterator[LLMRunner]:
    r = LLMRunner(llm(proxy.url))
    await r.start()
    yield r
    await r.close()


async def test_the_probe_tells_a_server_that_answers_from_one_that_is_down_or_loading(
    proxy: FaultProxy, runner: LLMRunner
) -> None:
    # What the runtime asks to decide whether the replica takes work (docs/agent-runtime.md): the model list.
    assert await runner.probe() is None
    assert proxy.probed[-1].body == {"GET": "/v1/models"} and proxy.probed[-1].status == 200
    proxy.inject(Fault(status=503, text='{"error": {"message": "Loading model"}}', match=lambda b: "GET" in b))
    loading = await runner.probe()
    assert loading is not None and loading.startswith(f"its model server: {proxy.url} answers 503"), loading
    assert "Loading model" in loading
    proxy.inject(Fault(status=404, text="no such path", match=lambda b: "GET" in b))  # an API without the list
    assert await runner.probe() is None
    proxy.inject(Fault(status=501, text="Unsupported method ('GET')", match=lambda b: "GET" in b))  # nor GET
    assert await runner.probe() is None
    gone = LLMRunner(llm(f"http://127.0.0.1:{free_port()}/v1"))
    try:
        said = await gone.probe()
        assert said is not None and said.startswith("its model server: cannot reach http://127.0.0.1:"), said
    finally:
        await gone.close()


async def test_a_429_with_retry_after_is_waited_out(proxy: FaultProxy, runner: LLMRunner) -> None:
    proxy.inject(Fault(status=429, headers={"Retry-After": "1"}, text="slow down"))
    out = await runner.run(with_schema())
    assert REVIEW.error(out.output) is None
    first, second = proxy.seen
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 1.0  # asked again only after the server's Retry-After


async def test_a_429_longer_than_the_task_can_wait_goes_back_with_its_retry_after(
    proxy: FaultProxy, runner: LLMRunner
) -> None:
    proxy.inject(Fault(status=429, headers={"Retry-After": "20"}, text="quota"))
    token = TASK_DEADLINE.set(asyncio.get_running_loop().time() + 10)  # 10 s left: 20 s does not fit
    try:
        with pytest.raises(Throttled) as caught:
            await runner.run(with_schema())
    finally:
        TASK_DEADLINE.reset(token)
    assert caught.value.retry_after == 20.0 and "429" in str(caught.value) and len(proxy.seen) == 1


async def test_a_503_without_retry_after_is_an_outage(proxy: FaultProxy, runner: LLMRunner) -> None:
    proxy.inject(Fault(status=503, text="down"))
    with pytest.raises(BackendError, match="503") as caught:
        await runner.run(with_schema())
    assert not isinstance(caught.value, Throttled)


async def test_a_cut_answer_is_asked_again_with_the_reason(proxy: FaultProxy, runner: LLMRunner) -> None:
    proxy.inject(Fault(truncate=12))
    out = await runner.run(with_schema())
    assert REVIEW.error(out.output) is None
    assert len(proxy.seen) == 2
    assert "cut at the token limit" in proxy.seen[1].last_user_message
    assert out.prompt_tokens > 0  # both calls counted


async def test_invalid_json_then_valid_on_the_reask(proxy: FaultProxy, runner: LLMRunner) -> None:
    proxy.inject(Fault(content='{"score": "high", comment'))
    out = await runner.run(with_schema())
    assert REVIEW.error(out.output) is None
    retry = proxy.seen[1]
    assert "not valid JSON" in retry.last_user_message
    assert retry.body["messages"][-2] == {"role": "assistant", "content": '{"score": "high", comment'}


async def test_a_wrong_answer_twice_fails_the_attempt_naming_the_field(proxy: FaultProxy, runner: LLMRunner) -> None:
    proxy.inject(Fault(content='```json\n{"score": 11, "comment": "great"}\n```', times=2))
    with pytest.raises(InvalidOutput, match=r"asked twice\): field 'score' is 11, must be <= 10") as caught:
        await runner.run(with_schema())
    assert caught.value.spent is not None and caught.value.spent.tokens > 0  # the calls were paid for
    assert "field 'score' is 11" in proxy.seen[1].last_user_message


async def test_fenced_answers_are_read(proxy: FaultProxy, runner: LLMRunner) -> None:
    proxy.inject(Fault(content='```json\n{"score": 8, "comment": "clear and short"}\n```'))
    out = await runner.run(with_schema())
    assert out.output == {"score": 8, "comment": "clear and short"} and len(proxy.seen) == 1


async def test_a_server_without_json_schema_gets_json_object_from_then_on(proxy: FaultProxy) -> None:
    runner = LLMRunner(llm(proxy.url, maxTokens=96))  # unconstrained, a small model rambles to its limit
    proxy.inject(Fault(status=400, text="response_format json_schema is not supported", match=wants_schema, times=99))
    try:
        for _ in range(2):
            # Without constrained decoding a 135M model often misses the shape, re-ask or not: that is the
            # model's limit (see bench/llm_contracts.py), not the fallback's.
            with contextlib.suppress(InvalidOutput):
                out = await runner.run(with_schema())
                assert REVIEW.error(out.output) is None
    finally:
        await runner.close()
    kinds = [s.response_type for s in proxy.seen]
    assert kinds[0] == "json_schema" and kinds[1:] and set(kinds[1:]) == {"json_object"}
    assert runner.client.json_schema is False


async def test_a_server_without_streaming_is_asked_whole_from_then_on(proxy: FaultProxy, runner: LLMRunner) -> None:
    proxy.inject(Fault(status=400, text="stream is not supported", match=streamed, times=99))
    for _ in range(2):
        out = await runner.run(with_schema())
        assert REVIEW.error(out.output) is None and out.first_token_seconds is None
    assert [bool(s.body.get("stream")) for s in proxy.seen] == [True, False, False]


async def test_a_slow_server_hits_the_task_timeout_and_the_agent_goes_on(
    model_server: ModelServer, proxy: FaultProxy, bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    spec = {"role": "reviewer", "backend": {"llm": llm(proxy.url).model_dump(by_alias=True, exclude_none=True)}}
    agent = await asyncio.to_thread(start_agent, "reviewer", spec)
    proxy.inject(Fault(delay=60))
    slow = with_schema(timeout_seconds=2.0)
    slow.namespace, slow.agent = namespace, "reviewer"
    await bus.dispatch(slow)
    result = await bus.wait_result(slow, 30)
    assert result is not None and not result.ok and result.error == "timed out after 2s"
    assert agent.metric("podium_agent_tasks_total", outcome="timeout") == 1
    # The next task is served (a fresh connection: the cut one is not reused).
    quick = with_schema()
    quick.namespace, quick.agent = namespace, "reviewer"
    await bus.dispatch(quick)
    answer = await bus.wait_result(quick, 60)
    assert answer is not None and answer.ok, answer
    assert REVIEW.error(answer.output) is None and answer.tokens > 0


async def test_an_invalid_answer_is_reported_as_such_by_the_agent(
    proxy: FaultProxy, bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    spec = {"role": "reviewer", "backend": {"llm": llm(proxy.url).model_dump(by_alias=True, exclude_none=True)}}
    agent = await asyncio.to_thread(start_agent, "reviewer", spec)
    proxy.inject(Fault(content='{"score": 5}', times=2))
    bad = with_schema()
    bad.namespace, bad.agent = namespace, "reviewer"
    await bus.dispatch(bad)
    result = await bus.wait_result(bad, 60)
    assert result is not None and not result.ok and result.error_type == INVALID_OUTPUT
    assert "missing field 'comment'" in (result.error or "") and result.tokens > 0
    assert agent.metric("podium_agent_tasks_total", outcome="invalid") == 1
    assert agent.metric("podium_agent_model_tokens_total", type="completion") > 0


def test_the_review_contract_is_the_one_the_strategies_send() -> None:
    assert REVIEW == contracts.review()
