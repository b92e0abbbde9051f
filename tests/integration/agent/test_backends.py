"""Each backend does real work: real processes, real local HTTP servers."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from podium.agent.backends import BackendError, build_backend
from podium.api.agent import AgentSpec
from podium.dataplane.messages import Task
from podium_localcluster.modelserver import MODEL_ALIAS as MODEL_NAME
from podium_localcluster.modelserver import LlamaServer as ModelServer
from tests.integration.agent.helpers import echo_service, serve
from tests.support.fault_proxy import FaultProxy

VENV_BIN = Path(sys.executable).parent


def task(data: Any, kind: str = "execute") -> Task:
    return Task(id="t-1", kind=kind, input=data, namespace="ns", agent="a", orchestration="ns/o")


def backend(spec: dict[str, Any]) -> Any:
    return build_backend(AgentSpec.model_validate({"role": "r", "backend": spec}))


def python_command(code: str, **extra: Any) -> dict[str, Any]:
    return {"command": {"args": [sys.executable, "-c", code], **extra}}


async def test_command_json_on_stdin() -> None:
    code = "import json,sys; d=json.load(sys.stdin); print(json.dumps({'output': sum(d['n']), 'quality': 0.5}))"
    b = backend(python_command(code))
    await b.start()
    out = await b.run(task({"n": [1, 2, 3]}))
    assert out.output == 6 and out.quality == 0.5


async def test_command_args_mode_and_text_output() -> None:
    b = backend(python_command("import sys; print(sys.argv[1][::-1])", inputMode="args"))
    out = await b.run(task("stressed"))
    assert out.output == "desserts"


async def test_command_ruff_reviews_a_snippet() -> None:
    ruff = VENV_BIN / "ruff"
    args = [str(ruff), "check", "--output-format=json", "--exit-zero", "--stdin-filename=x.py", "-"]
    b = backend({"command": {"args": args}})
    await b.start()
    out = await b.run(task("import os\nx = 1\n", kind="review"))
    codes = {finding["code"] for finding in out.output}
    assert "F401" in codes  # `os` imported but unused


async def test_command_failure_reports_exit_code_and_stderr() -> None:
    b = backend(python_command("import sys; sys.stderr.write('bad input\\n'); sys.exit(3)"))
    with pytest.raises(BackendError, match=r"exited with code 3: bad input"):
        await b.run(task({}))


async def test_command_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The program starts a grandchild that would outlive a plain kill of the direct child.
    script = (
        "import subprocess,sys,time;"
        "p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
        f"open({str(pidfile)!r},'w').write(str(p.pid));"
        "time.sleep(60)"
    )
    b = backend(python_command(script))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.run(task({})), 1.0)
    assert time.monotonic() - started < 5
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("grandchild survived the timeout")


async def test_command_missing_program_fails_at_start() -> None:
    with pytest.raises(BackendError, match="not on PATH"):
        await backend({"command": {"args": ["no-such-program-xyz"]}}).start()


async def test_python_sync_and_async_functions() -> None:
    b = backend({"python": {"entrypoint": "podium.demo.agents:planner"}})
    await b.start()
    out = await b.run(task({"goal": "ship the agent runtime"}, kind="plan"))
    assert [t["name"] for t in out.output["tasks"]][-1] == "synthesize"
    assert not b.handles("bid") and b.handles("plan")

    b = backend({"python": {"entrypoint": "tests.integration.agent.sample_agents:async_double"}})
    await b.start()
    out = await b.run(task(21))
    assert out.output == 42 and out.tokens == 5 and b.handles("bid")


async def test_python_errors() -> None:
    with pytest.raises(BackendError, match="cannot import"):
        await backend({"python": {"entrypoint": "no_such_module_xyz:f"}}).start()
    b = backend({"python": {"entrypoint": "tests.integration.agent.sample_agents:crash"}})
    with pytest.raises(ValueError, match="cannot handle"):
        await b.run(task("x"))


async def test_llm_backend_sends_the_api_key_and_the_system_prompt(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_LLM_API_KEY", "sk-test")
    async with FaultProxy(model_server.url) as proxy:
        llm = {"model": MODEL_NAME, "baseURL": proxy.url, "systemPrompt": "You review.", "maxTokens": 16}
        b = backend({"llm": llm})
        await b.start()
        try:
            out = await b.run(task({"code": "x = 1"}))
        finally:
            await b.close()
    assert out.completion_tokens > 0
    sent = proxy.seen[0]
    assert sent.headers["Authorization"] == "Bearer sk-test" and sent.body["max_tokens"] == 16
    assert sent.body["messages"][0] == {"role": "system", "content": "You review."}


async def test_llm_backend_reports_http_errors(model_server: ModelServer) -> None:
    b = backend({"llm": {"model": MODEL_NAME, "baseURL": f"{model_server.url}/wrong"}})
    try:
        with pytest.raises(BackendError, match="404"):
            await b.run(task("x"))
    finally:
        await b.close()


async def test_http_backend() -> None:
    async with serve(echo_service()) as url:
        b = backend({"http": {"url": f"{url}/work"}})
        try:
            out = await b.run(task("hello"))
            assert out.output == {"upper": "HELLO", "kind": "execute"} and out.quality == 1.0
            with pytest.raises(BackendError, match=r"500.*service exploded"):
                await b.run(task("boom"))
        finally:
            await b.close()


async def test_every_backend_sees_the_tasks_output_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    with_schema = Task(id="t-1", kind="execute", input="schema", namespace="ns", agent="a", output_schema=schema)
    code = "import json,os; print(json.dumps({'schemaSeen': json.loads(os.environ['PODIUM_TASK_SCHEMA'])}))"
    assert (await backend(python_command(code)).run(with_schema)).output == {"schemaSeen": schema}
    async with serve(echo_service()) as url:
        b = backend({"http": {"url": f"{url}/work"}})
        try:
            assert (await b.run(with_schema)).output == {"schemaSeen": schema}
        finally:
            await b.close()


async def test_every_backend_sees_the_tasks_context_and_may_answer_state_updates() -> None:
    context = {"blackboard": {"values": {"n": {"value": 1, "version": 4}}}}
    told = Task(id="t-1", kind="execute", input="context", namespace="ns", agent="a", context=context)
    code = (
        "import json,os; c=json.loads(os.environ['PODIUM_TASK_CONTEXT'])['blackboard']['values'];"
        "print(json.dumps({'output': c, 'stateUpdates': {'n': c['n']['value'] + 1}}))"
    )
    out = await backend(python_command(code)).run(told)
    assert (out.output, out.state_updates) == (context["blackboard"]["values"], {"n": 2})
    async with serve(echo_service()) as url:
        b = backend({"http": {"url": f"{url}/work"}})
        try:
            out = await b.run(told)
            assert (out.output, out.state_updates) == (context["blackboard"]["values"], {"n": 2})
        finally:
            await b.close()
