"""The `a2a` backend: a Podium agent whose work a remote A2A agent does. The remote here is made with the official A2A
SDK (tests/support/a2a.py); a real `podium agent` process sends it tasks from its inbox."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from podium.agent.backends.a2a import A2ARunner
from podium.agent.backends.base import BackendError
from podium.api.a2a import A2ABackend
from podium.dataplane.bus import Bus
from podium.dataplane.messages import Task
from podium_localcluster.redis_server import free_port
from tests.integration.agent.conftest import StartAgent
from tests.support.a2a import sdk_agent


def task(data: Any, kind: str = "execute", namespace: str = "ns", agent: str = "words") -> Task:
    return Task(
        id=f"task-{uuid.uuid4().hex[:8]}", kind=kind, input=data, namespace=namespace, agent=agent, orchestration="ns/o"
    )


@pytest.mark.parametrize("streaming", [True, False])
async def test_text_and_data_reach_the_sdk_agent_and_its_artifact_is_the_output(streaming: bool) -> None:
    async with sdk_agent(streaming=streaming) as remote:
        runner = A2ARunner(A2ABackend(url=remote.url, streaming=streaming))
        await runner.start()
        try:
            out = await runner.run(task("three small words", kind="review"))
            assert out.output == {"words": 3, "upper": "THREE SMALL WORDS"}
            keys = await runner.run(task({"b": 1, "a": [1, 2]}))
            assert keys.output == "a,b"
        finally:
            await runner.close()
        first, second = remote.seen.messages
        assert first["texts"] == ["three small words"]
        assert first["metadata"]["podium"]["kind"] == "review"
        assert first["metadata"]["podium"]["orchestration"] == "ns/o"
        # The card accepts application/json, so structured input went as a data part.
        assert second["data"] == [{"b": 1.0, "a": [1.0, 2.0]}] and second["texts"] == []


async def test_a_remote_failure_or_question_fails_the_attempt_with_its_words() -> None:
    async with sdk_agent() as remote:
        runner = A2ARunner(A2ABackend(url=remote.url))
        await runner.start()
        try:
            with pytest.raises(BackendError, match=rf"^a2a: {remote.url}: task failed: quota exhausted$"):
                await runner.run(task("fail quota exhausted"))
            with pytest.raises(BackendError, match="asks for more input, which a Podium task cannot give: which lang"):
                await runner.run(task("ask me"))
        finally:
            await runner.close()


async def test_an_unreachable_agent_is_named_and_read_again_next_time() -> None:
    port = free_port()
    runner = A2ARunner(A2ABackend(url=f"http://127.0.0.1:{port}"))
    await runner.start()
    try:
        with pytest.raises(BackendError, match=rf"a2a: cannot read the agent card of http://127.0.0.1:{port}: "):
            await runner.run(task("hello"))
    finally:
        await runner.close()


async def test_a_podium_agent_runs_inbox_tasks_on_an_sdk_agent(
    start_agent: StartAgent, bus: Bus, namespace: str
) -> None:
    async with sdk_agent() as remote:
        start_agent("words", {"role": "counter", "backend": {"a2a": {"url": remote.url}}})
        sent = task("count these four words", namespace=namespace)
        await bus.dispatch(sent)
        result = await bus.wait_result(sent, 20)
        assert result is not None and result.ok, result
        assert result.output == {"words": 4, "upper": "COUNT THESE FOUR WORDS"}
        assert remote.seen.messages[0]["metadata"]["podium"]["taskId"] == sent.id


async def test_podium_to_podium_over_a2a_keeps_the_kind_and_the_quality(
    start_agent: StartAgent, bus: Bus, namespace: str
) -> None:
    # "writer" serves A2A; "front" is an a2a-backend agent pointed at it: a review sent to front is done by writer.
    port = free_port()
    start_agent(
        "writer",
        {
            "role": "documenter",
            "backend": {"python": {"entrypoint": "podium.demo.agents:documenter"}},
            "a2a": {"enabled": True, "port": port},
        },
    )
    start_agent("front", {"role": "documenter", "backend": {"a2a": {"url": f"http://127.0.0.1:{port}"}}})
    sent = task({"text": "operators reconcile declared state"}, kind="review", namespace=namespace, agent="front")
    await bus.dispatch(sent)
    result = await bus.wait_result(sent, 30)
    assert result is not None and result.ok, result
    # The documenter's review in its contract; the kind and the quality crossed A2A both ways.
    assert set(result.output) == {"score", "comment"} and "(documenter)" in result.output["comment"]
    assert result.quality is not None and round(result.quality * 10) == result.output["score"]
    writer_history = await bus.history(agent=(namespace, "writer"))
    assert next(e.payload["task_id"] for e in writer_history if e.type == "result").startswith("a2a-")
