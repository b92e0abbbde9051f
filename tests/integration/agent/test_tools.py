"""The llm backend's tool loop against the real model (llama-server, SmolLM2-135M-Instruct) and real MCP servers:
the reference `mcp-server-time` package and the SDK-written test server (tests/support/mcp_server.py), over stdio
and Streamable HTTP. The small model never emits native `tool_calls`: the native path's calls are injected by the
fault proxy in front of it (what a model trained for tools would answer); everything else is the model's own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from podium.agent.backends.base import BackendError, BudgetSpent
from podium.agent.backends.llm import LLMRunner
from podium.api.tools import Tools, header_env
from podium.dataplane.messages import Task
from podium_localcluster.modelserver import LlamaServer
from podium_localcluster.redis_server import free_port
from tests.integration.agent.llm_cases import llm
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
DATE = {
    "type": "object",
    "properties": {
        "date": {"type": "string", "description": "the date, YYYY-MM-DD", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    },
    "required": ["date"],
    "additionalProperties": False,
}
COUNT = {
    "type": "object",
    "properties": {"words": {"type": "integer", "description": "how many words", "minimum": 0, "maximum": 1000}},
    "required": ["words"],
    "additionalProperties": False,
}


def time_server(**extra: Any) -> dict[str, Any]:
    stdio = {"command": str(VENV_BIN / "mcp-server-time"), "args": ["--local-timezone", "UTC"]}
    return {"name": "time", "stdio": stdio, "tools": ["get_current_time"], **extra}


def sdk_server(**extra: Any) -> dict[str, Any]:
    stdio = {"command": sys.executable, "args": ["-m", "tests.support.mcp_server"], "workingDir": str(ROOT)}
    return {"name": "test", "stdio": stdio, **extra}


def task(data: Any, schema: dict[str, Any] | None, **meta: Any) -> Task:
    return Task(id="t-1", kind="execute", input=data, namespace="ns", agent="a", output_schema=schema, meta=meta)


def runner(
    url: str, calling: str, *servers: dict[str, Any], env: dict[str, str] | None = None, **loop: Any
) -> LLMRunner:
    tools = Tools.model_validate({"servers": list(servers), "calling": calling, **loop})
    spec = llm(url, systemPrompt="You are a careful assistant.", maxTokens=200)
    return LLMRunner(spec, tools=tools, env=env or {})


@pytest.fixture
async def proxy(model_server: LlamaServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(model_server.url) as p:
        yield p


def with_tools(body: dict[str, Any]) -> bool:
    return bool(body.get("tools")) and body.get("tool_choice") == "auto"


def tool_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


async def test_the_real_model_calls_a_stdio_tool_and_answers_with_its_result(proxy: FaultProxy) -> None:
    """Schema-constrained calling: the model asks for get_current_time, is shown the date the server gives, and
    answers with that date (a 135M model without the tool answers a date from its training)."""
    r = runner(proxy.url, "schema", time_server())
    await r.start()
    try:
        before = datetime.now(UTC).date()
        out = await r.run(task({"question": "What is today's date in UTC?"}, DATE))
        after = datetime.now(UTC).date()
    finally:
        await r.close()
    assert out.tool_calls, "the model called no tool"
    call = out.tool_calls[0]
    assert (call.server, call.tool, call.ok, call.round) == ("time", "get_current_time", True, 1)
    told = json.loads(call.result)["datetime"][:10]
    assert told in (before.isoformat(), after.isoformat())
    assert out.output == {"date": told}
    # Every round is a model call whose tokens count; the first offered the tool, the last only an answer.
    assert len(proxy.seen) >= 2 and out.tokens == out.prompt_tokens + out.completion_tokens > 0
    first = proxy.seen[0].body["response_format"]["json_schema"]["schema"]
    assert [b["properties"]["tool"]["const"] for b in first["anyOf"][:-1]] == ["get_current_time"]
    assert "get_current_time" in proxy.seen[0].body["messages"][0]["content"]  # the tools, in the system prompt


async def test_native_tool_calls_run_the_tool_and_the_model_reads_its_result(proxy: FaultProxy) -> None:
    proxy.inject(
        Fault(match=with_tools, tool_calls=[{"name": "word_count", "arguments": {"text": "one two three four"}}])
    )
    r = runner(proxy.url, "native", sdk_server())
    await r.start()
    try:
        out = await r.run(task({"question": "How many words are in 'one two three four'?"}, COUNT))
    finally:
        await r.close()
    assert [(c.tool, c.arguments, c.ok, c.result) for c in out.tool_calls] == [
        ("word_count", {"text": "one two three four"}, True, "4")
    ]
    second = proxy.seen[1].body
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "word_count"
    assert tool_messages(second) == ["4"]
    assert second["tools"][0]["function"]["name"] in {"word_count", "fail", "sleep", "crash", "calls"}
    assert isinstance(out.output["words"], int)  # the model's own answer, in the contract
    assert r.calling == "native"


async def test_auto_calling_falls_back_to_schema_calls_when_the_server_refuses_tools(proxy: FaultProxy) -> None:
    proxy.inject(Fault(status=400, text='{"error": {"message": "tools are not supported"}}', match=with_tools))
    r = runner(proxy.url, "auto", time_server())
    await r.start()
    try:
        out = await r.run(task({"question": "What is today's date in UTC?"}, DATE))
        seen_first = len(proxy.seen)
        await r.run(task({"question": "What is the date today?"}, DATE))
    finally:
        await r.close()
    assert r.calling == "schema"
    assert proxy.seen[0].status == 400 and "tools" in proxy.seen[0].body
    assert all("tools" not in s.body for s in proxy.seen[1:])  # remembered: never sent again
    assert "anyOf" in proxy.seen[1].body["response_format"]["json_schema"]["schema"]
    assert DATE["required"] == list(out.output) and seen_first < len(proxy.seen)


async def test_failed_calls_are_answers_to_the_model_not_failed_tasks(proxy: FaultProxy) -> None:
    """A tool's own error, a tool that does not exist and arguments that are not JSON: each is shown to the model
    as a failed call, and the task still ends with the model's answer."""
    calls = [
        {"name": "fail", "arguments": {"reason": "disk on fire"}},
        {"name": "no_such_tool", "arguments": {}},
        {"name": "word_count", "arguments": "{not json"},
    ]
    proxy.inject(Fault(match=with_tools, tool_calls=calls))
    r = runner(proxy.url, "native", sdk_server())
    await r.start()
    try:
        out = await r.run(task({"question": "Count the words of 'a b'."}, COUNT))
    finally:
        await r.close()
    assert [(c.tool, c.ok) for c in out.tool_calls] == [("fail", False), ("no_such_tool", False)]
    told = tool_messages(proxy.seen[1].body)
    assert "failed on purpose: disk on fire" in told[0] and told[0].startswith("the call failed")
    assert "there is no tool named 'no_such_tool'" in told[1] and "word_count" in told[1]
    assert told[2].startswith("the call failed: the arguments are not valid JSON")
    assert COUNT["required"] == list(out.output)


async def test_a_hung_call_times_out_and_a_crashed_server_is_started_again(proxy: FaultProxy) -> None:
    # The timeout bounds every call of the server, the quick ones too: 6 s leaves them room on a loaded CI machine,
    # where 2 s once timed out the `calls` right after the hung one.
    for name, arguments in (("sleep", {"seconds": 60}), ("calls", {}), ("crash", {}), ("calls", {"x": 1})):
        proxy.inject(Fault(match=with_tools, tool_calls=[{"name": name, "arguments": arguments}]))
    r = runner(proxy.url, "native", sdk_server(timeoutSeconds=6), maxCalls=4)
    await r.start()
    try:
        out = await r.run(task({"question": "Use the tools as you are told."}, COUNT))
    finally:
        await r.close()
    results = [(c.tool, c.ok, c.result) for c in out.tool_calls]
    assert results[0] == ("sleep", False, "the call failed: the call timed out after 6s")
    assert results[1][:2] == ("calls", True)
    assert results[2][:2] == ("crash", False)
    # The server died with the crash; the next call starts it again, and the new process counts from 1.
    assert results[3] == ("calls", True, "1")
    assert proxy.seen[-1].body["tool_choice"] == "none"  # four calls made: the last round allows none


async def test_calls_are_bounded_per_task_and_a_repeated_call_is_not_run_again(proxy: FaultProxy) -> None:
    same = [{"name": "word_count", "arguments": {"text": "a b c"}}]
    proxy.inject(Fault(match=with_tools, tool_calls=same, times=5))
    r = runner(proxy.url, "native", sdk_server(), maxCalls=3)
    await r.start()
    try:
        out = await r.run(task({"question": "Count the words of 'a b c'."}, COUNT))
    finally:
        await r.close()
    assert [c.tool for c in out.tool_calls] == ["word_count"]  # the repeat was not run
    assert tool_messages(proxy.seen[1].body) == ["3"]
    assert "not run again" in tool_messages(proxy.seen[2].body)[-1]
    assert proxy.seen[2].body["tool_choice"] == "none" and len(proxy.seen) == 3

    proxy.seen.clear()
    different = [{"name": "word_count", "arguments": {"text": "a " * n}} for n in range(1, 4)]
    proxy.faults.clear()
    for call in different:
        proxy.inject(Fault(match=with_tools, tool_calls=[call]))
    r = runner(proxy.url, "native", sdk_server(), maxCalls=2)
    await r.start()
    try:
        out = await r.run(task({"question": "Count words."}, COUNT))
    finally:
        await r.close()
    assert len(out.tool_calls) == 2 and proxy.seen[-1].body["tool_choice"] == "none"


async def test_the_loop_stops_when_the_runs_token_budget_is_spent(proxy: FaultProxy) -> None:
    r = runner(proxy.url, "schema", time_server())
    await r.start()
    try:
        with pytest.raises(BudgetSpent) as caught:
            await r.run(task({"question": "What is today's date in UTC?"}, DATE, budget={"tokens": 100, "cost": None}))
    finally:
        await r.close()
    spent = caught.value.spent
    assert spent is not None and spent.tokens >= 100
    assert len(proxy.seen) == 1  # the first round is paid (the engine dispatched it); no second one
    assert [c.tool for c in spent.tool_calls] == ["get_current_time"]
    assert "token budget is spent" in str(caught.value) and f"{spent.tokens} tokens used of the 100" in str(
        caught.value
    )


@pytest.fixture
def http_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.mcp_server", "--http", str(port), "--token", "s3cret"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            import socket

            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for("the MCP test server to listen", listening, timeout=30, every=0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_remote_server_gets_its_header_from_the_secrets_variable(proxy: FaultProxy, http_server: str) -> None:
    server = {
        "name": "remote",
        "http": {
            "url": http_server,
            "headers": [{"name": "Authorization", "secretKeyRef": {"name": "mcp", "key": "token"}}],
        },
    }
    variable = header_env("remote", "Authorization")
    assert variable == "PODIUM_MCP_REMOTE__AUTHORIZATION"

    wrong = runner(proxy.url, "native", server, env={variable: "Bearer wrong"})
    with pytest.raises(BackendError, match=r"tool server 'remote' \(http://127.0.0.1:\d+/mcp\): cannot connect"):
        await wrong.start()
    await wrong.close()

    proxy.inject(Fault(match=with_tools, tool_calls=[{"name": "word_count", "arguments": {"text": "x y"}}]))
    right = runner(proxy.url, "native", server, env={variable: "Bearer s3cret"})
    await right.start()
    try:
        out = await right.run(task({"question": "Count the words of 'x y'."}, COUNT))
    finally:
        await right.close()
    assert [(c.server, c.tool, c.result) for c in out.tool_calls] == [("remote", "word_count", "2")]


async def test_a_server_that_cannot_start_stops_the_backend_naming_it(proxy: FaultProxy) -> None:
    missing = runner(proxy.url, "schema", {"name": "ghost", "stdio": {"command": "no-such-mcp-server"}})
    with pytest.raises(BackendError, match=r"tools: tool server 'ghost' \(stdio: no-such-mcp-server\): cannot connect"):
        await missing.start()
    await missing.close()
    unlisted = runner(proxy.url, "schema", time_server(tools=["get_current_time", "tell_fortune"]))
    with pytest.raises(BackendError, match="tool server 'time' lists no tool 'tell_fortune'"):
        await unlisted.start()
    await unlisted.close()
