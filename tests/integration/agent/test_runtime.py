"""`podium agent` end to end: real processes, real Redis, results through the bus."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from podium.dataplane.bus import Bus
from podium.dataplane.messages import Task
from podium.engine import contracts
from podium_localcluster.modelserver import MODEL_ALIAS as MODEL_NAME
from podium_localcluster.modelserver import LlamaServer as ModelServer
from podium_localcluster.modelserver import locate
from podium_localcluster.redis_server import RedisServer
from tests.integration.agent.conftest import ROOT, VENV_BIN, StartAgent
from tests.integration.agent.helpers import echo_service, serve
from tests.support.wait import wait_for

SAMPLES = "tests.integration.agent.sample_agents"


def new_task(namespace: str, agent: str, kind: str, data: Any, **extra: Any) -> Task:
    return Task(
        id=f"task-{uuid.uuid4().hex[:8]}",
        kind=kind,
        input=data,
        namespace=namespace,
        agent=agent,
        orchestration=f"{namespace}/demo",
        **extra,
    )


async def run_task(bus: Bus, task: Task, wait: float = 20.0) -> Any:
    await bus.dispatch(task)
    result = await bus.wait_result(task, wait)
    assert result is not None, f"no result for {task.kind} task {task.id}"
    return result


async def test_python_backend_plans_bids_and_counts(bus: Bus, namespace: str, start_agent: StartAgent) -> None:
    spec = {
        "role": "planner",
        "capabilities": [{"name": "planning", "level": 0.8}],
        "backend": {"python": {"entrypoint": "podium.demo.agents:planner"}},
        "pricing": {"perTask": 0.004},
    }
    agent = start_agent("planner", spec)
    plan = await run_task(bus, new_task(namespace, "planner", "plan", {"goal": "evaluate vector databases"}))
    assert plan.ok and plan.output["tasks"][-1]["name"] == "synthesize"
    assert plan.agent == "planner" and plan.replica == agent.replica and plan.cost == 0.004

    bid = await run_task(bus, new_task(namespace, "planner", "bid", {"capability": "planning"}))
    assert bid.ok and bid.output["price"] == 0.004 and bid.output["confidence"] == 0.8 and bid.cost == 0.0
    assert 0 < bid.output["estimatedSeconds"] < 5  # from the plan task's duration

    assert agent.metric("podium_agent_tasks_total", outcome="ok") == 2
    assert agent.metric("podium_agent_task_duration_seconds_count") == 2
    task_lines = [line for line in agent.logs() if line.get("task_id") == plan.task_id]
    assert task_lines and all(
        line["orchestration"] == f"{namespace}/demo" and line["agent"] == "planner" for line in task_lines
    )
    assert agent.stop() == 0


async def test_command_backend_runs_ruff(bus: Bus, namespace: str, start_agent: StartAgent) -> None:
    args = ["ruff", "check", "--output-format=json", "--exit-zero", "--stdin-filename=input.py", "-"]
    start_agent("reviewer", {"role": "reviewer", "backend": {"command": {"args": args}}})
    result = await run_task(bus, new_task(namespace, "reviewer", "review", "import os\n\nx == 1\n"))
    assert result.ok
    assert {f["code"] for f in result.output} >= {"F401"}


async def test_the_example_linter_lints_the_source_an_object_input_carries(
    bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    """examples/agents.yaml's command agent: ruff on the input's `source`, not on the JSON the backend writes (which
    ruff reads as one useless expression, B018)."""
    docs = yaml.safe_load_all((ROOT / "examples" / "agents.yaml").read_text())
    (linter,) = [d for d in docs if d["metadata"]["name"] == "linter"]
    start_agent("linter", linter["spec"])
    source = "import os\n\ndef average(values):\n    return sum(values) / len(values)\n"
    result = await run_task(bus, new_task(namespace, "linter", "execute", {"source": source}))
    assert result.ok, result.error
    assert result.output == {
        "source": source,
        "findings": [{"line": 1, "code": "F401", "message": "`os` imported but unused"}],
    }


async def test_command_backend_crash_reports_stderr(bus: Bus, namespace: str, start_agent: StartAgent) -> None:
    code = "import sys; sys.stderr.write('disk on fire\\n'); sys.exit(4)"
    start_agent("crasher", {"role": "worker", "backend": {"command": {"args": [sys.executable, "-c", code]}}})
    result = await run_task(bus, new_task(namespace, "crasher", "execute", {}))
    assert not result.ok and "exited with code 4" in result.error and "disk on fire" in result.error


async def test_an_answer_too_large_for_the_bus_is_logged_and_counted_as_the_failure_the_run_is_told(
    bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    # The bus stores "result not stored: ..." in its place; the agent's log and metrics say the same, not "done".
    code = "import sys; sys.stdout.write('x' * 1_200_000)"
    agent = start_agent("verbose", {"role": "worker", "backend": {"command": {"args": [sys.executable, "-c", code]}}})
    result = await run_task(bus, new_task(namespace, "verbose", "execute", {}))
    assert not result.ok and result.error.startswith("result not stored: its result is"), result.error

    def finished() -> dict[str, Any] | None:  # logged once the result is stored, maybe after the run read it
        lines = [line for line in agent.logs() if line.get("task_id") == result.task_id]
        return lines[-1] if lines and lines[-1]["msg"] != "task started" else None

    line = wait_for("the task's last log line", finished, timeout=10, every=0.1)
    assert line["msg"] == f"task failed: {result.error}" and line["outcome"] == "error", line
    assert agent.metric("podium_agent_tasks_total", outcome="error") == 1
    assert agent.metric("podium_agent_tasks_total", outcome="ok") == 0


async def test_an_llm_agent_takes_no_work_while_its_model_server_is_down_and_says_why(
    bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    # The replica runs, its model server does not answer: it fails /readyz naming why and says so in its heartbeat
    # (the operator shows it on the Agent; runs pass the agent over), and leaves its tasks in the inbox instead of
    # failing them one by one. Once a real llama-server answers on that port the replica takes them; when it goes
    # away again, the first task that finds it unreachable stops the replica taking more at once. A task queued
    # before the replica starts is not taken either: the replica takes nothing before its first probe is back.
    server = ModelServer(locate(), threads=1)  # its port chosen; nothing listens there yet
    llm = {"model": MODEL_NAME, "baseURL": server.base_url, "temperature": 0, "seed": 1, "maxTokens": 16}
    early = new_task(namespace, "writer", "execute", "Name a bird.")
    await bus.dispatch(early)
    agent = start_agent("writer", {"role": "writer", "backend": {"llm": llm}}, wait=False)

    def unready() -> str | None:
        try:
            status, body = agent.probe("/readyz")
        except OSError:  # not serving its probes yet
            return None
        return body if status == 503 and "backend unavailable" in body else None

    async def started(task: Task) -> bool:
        ran = any(line.get("task_id") == task.id for line in agent.logs())
        return ran or await bus.get_result(task) is not None or await bus.queue_depth(namespace, "writer") == 0

    said = wait_for("/readyz to say why", unready, timeout=15, every=0.1)
    assert f"its model server: cannot reach {server.base_url}" in said, said
    (replica,) = await bus.replicas(namespace, "writer")
    assert replica.problem is not None and replica.problem.startswith("its model server: cannot reach"), replica
    assert agent.metric("podium_agent_backend_up") == 0
    waiting = new_task(namespace, "writer", "execute", "Name a colour.")
    await bus.dispatch(waiting)
    await asyncio.sleep(3)  # a probe or two
    assert not await started(waiting)  # waits: in the inbox, or handed back by a read already under way
    assert not await started(early)

    with server:
        for task in (early, waiting):
            done = await bus.wait_result(task, 60)
            assert done is not None and done.ok and isinstance(done.output, str) and done.output, done
        agent.wait_ready()
        assert (await bus.replicas(namespace, "writer"))[0].problem is None
        assert agent.metric("podium_agent_backend_up") == 1

    failed = await run_task(bus, new_task(namespace, "writer", "execute", "Name a fruit."), wait=30)
    assert not failed.ok and "cannot reach" in failed.error, failed.error
    wait_for("/readyz to fail again", unready, timeout=5, every=0.1)  # at once, not at the next 15 s probe
    queued = new_task(namespace, "writer", "execute", "Name a tree.")
    await bus.dispatch(queued)
    await asyncio.sleep(1.5)
    assert not await started(queued)
    logged = [line["msg"] for line in agent.logs() if line.get("msg", "").startswith("backend ")]
    assert logged[0].startswith("backend unavailable, taking no tasks until it answers: its model server: cannot")
    assert "backend answers again: taking tasks" in logged


PROPOSAL = {"draft": "Podium runs agents", "round": 1, "proposal": "Podium runs teams of AI agents on Kubernetes"}


async def test_llm_backend_reports_tokens_cost_and_first_token(
    bus: Bus, namespace: str, start_agent: StartAgent, model_server: ModelServer
) -> None:
    llm = {
        "model": MODEL_NAME,
        "baseURL": model_server.base_url,
        "systemPrompt": "Be brief.",
        "temperature": 0,
        "seed": 1,
        "maxTokens": 300,
        "pricing": {"inputPerMillion": 1000.0, "outputPerMillion": 3000.0},
    }
    spec = {"role": "reviewer", "backend": {"llm": llm}, "pricing": {"perTask": 0.5}}
    agent = await asyncio.to_thread(start_agent, "reviewer", spec)
    review = contracts.review()
    result = await run_task(
        bus,
        new_task(namespace, "reviewer", "review", PROPOSAL, output_schema=review.schema),
        wait=120,
    )
    assert result.ok and review.error(result.output) is None
    prompt = agent.metric("podium_agent_model_tokens_total", type="prompt")
    completion = agent.metric("podium_agent_model_tokens_total", type="completion")
    assert prompt > 0 and completion > 0 and result.tokens == prompt + completion
    assert result.cost == pytest.approx(0.5 + prompt * 1000.0 / 1e6 + completion * 3000.0 / 1e6)
    assert agent.metric("podium_agent_model_first_token_seconds_count") == 1


async def test_http_backend(bus: Bus, namespace: str, start_agent: StartAgent) -> None:
    async with serve(echo_service()) as url:
        await asyncio.to_thread(start_agent, "echo", {"role": "echo", "backend": {"http": {"url": f"{url}/work"}}})
        result = await run_task(bus, new_task(namespace, "echo", "execute", "hi"))
        failed = await run_task(bus, new_task(namespace, "echo", "execute", "boom"))
    assert result.ok and result.output == {"upper": "HI", "kind": "execute"}
    assert not failed.ok and "service exploded" in failed.error


async def test_hanging_task_is_cut_and_the_agent_keeps_serving(
    bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    spec = {"role": "sleeper", "backend": {"python": {"entrypoint": f"{SAMPLES}:sleepy"}}, "concurrency": 1}
    agent = start_agent("sleeper", spec)
    hung = await run_task(bus, new_task(namespace, "sleeper", "execute", 60, timeout_seconds=1))
    assert not hung.ok and hung.error == "timed out after 1s" and hung.duration_ms < 3000
    quick = await run_task(bus, new_task(namespace, "sleeper", "execute", 0.01))
    crashed = await run_task(bus, new_task(namespace, "sleeper", "execute", -1))
    assert quick.ok and quick.output == {"slept": 0.01}
    assert not crashed.ok and crashed.error == "RuntimeError: negative sleep requested"
    assert agent.metric("podium_agent_tasks_total", outcome="timeout") == 1
    assert agent.metric("podium_agent_backend_errors_total") == 2


async def test_sigterm_finishes_in_flight_and_hands_back_the_rest(
    bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    spec = {"role": "sleeper", "backend": {"python": {"entrypoint": f"{SAMPLES}:sleepy"}}, "concurrency": 2}
    first = start_agent("sleeper", spec, replica="first", PODIUM_GRACE_SECONDS="10")
    tasks = [new_task(namespace, "sleeper", "execute", 1.5) for _ in range(5)]
    for task in tasks:
        await bus.dispatch(task)
    await asyncio.to_thread(
        first.wait_until, lambda: first.metric("podium_agent_in_flight") == 2, 10, "two tasks in flight"
    )
    first.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(first.wait_until, lambda: first.probe("/readyz")[0] == 503, 5, "readyz 503 while draining")
    code = await asyncio.to_thread(first.proc.wait, 15)
    assert code == 0
    done_by_first = [r for t in tasks if (r := await bus.get_result(t)) is not None]
    assert len(done_by_first) == 2 and all(r.ok and r.replica == "first" for r in done_by_first)

    second = await asyncio.to_thread(start_agent, "sleeper", {**spec, "concurrency": 3}, replica="second")
    rest = await bus.wait_results(tasks, 20)
    assert len(rest) == 5
    assert sorted(r.replica for r in rest.values()) == ["first"] * 2 + ["second"] * 3
    assert second.stop() == 0


async def test_maintenance_by_signal_and_by_config(bus: Bus, namespace: str, start_agent: StartAgent) -> None:
    spec = {"role": "doc", "backend": {"python": {"entrypoint": "podium.demo.agents:documenter"}}}
    agent = start_agent("doc", spec)
    agent.proc.send_signal(signal.SIGUSR1)
    await asyncio.to_thread(agent.wait_until, lambda: agent.probe("/readyz")[0] == 503, 5, "maintenance")
    assert "maintenance" in agent.probe("/readyz")[1]
    for _ in range(50):  # left once the current fetch returns: the engine stops choosing it
        if not await bus.replicas(namespace, "doc"):
            break
        await asyncio.sleep(0.1)
    assert await bus.replicas(namespace, "doc") == []
    task = new_task(namespace, "doc", "execute", {"text": "graceful drains matter"})
    await bus.dispatch(task)
    assert await bus.wait_result(task, 1.5) is None
    agent.proc.send_signal(signal.SIGUSR1)
    result = await bus.wait_result(task, 10)
    assert result is not None and result.ok and agent.probe("/readyz")[0] == 200

    agent.write_spec(maintenance=True)
    await asyncio.to_thread(agent.wait_until, lambda: agent.probe("/readyz")[0] == 503, 5, "maintenance via file")
    agent.write_spec(maintenance=False)
    await asyncio.to_thread(agent.wait_until, lambda: agent.probe("/readyz")[0] == 200, 5, "back from maintenance")
    assert agent.proc.poll() is None


async def test_stuck_event_loop_fails_liveness(bus: Bus, namespace: str, start_agent: StartAgent) -> None:
    spec = {"role": "blocker", "backend": {"python": {"entrypoint": f"{SAMPLES}:block_loop"}}}
    agent = start_agent("blocker", spec, PODIUM_STALL_SECONDS="0.5")
    assert agent.probe("/healthz")[0] == 200
    task = new_task(namespace, "blocker", "execute", 3)
    await bus.dispatch(task)
    await asyncio.to_thread(agent.wait_until, lambda: agent.probe("/healthz")[0] == 503, 5, "healthz 503")
    assert "stalled" in agent.probe("/healthz")[1]
    assert (await bus.wait_result(task, 10)) is not None
    await asyncio.to_thread(agent.wait_until, lambda: agent.probe("/healthz")[0] == 200, 5, "healthz 200 again")


def test_bad_config_exits_2(start_agent: StartAgent) -> None:
    agent = start_agent("bad", {"role": "x", "backend": {}, "concurrency": 0}, wait=False)
    assert agent.proc.wait(20) == 2
    text = agent.log_path.read_text()
    assert "configuration error" in text and "concurrency" in text


def test_podium_agent_help_lists_the_environment() -> None:
    import subprocess

    out = subprocess.run([str(VENV_BIN / "podium"), "agent", "--help"], capture_output=True, text=True, check=True)
    assert "PODIUM_REDIS_URL" in out.stdout and "SIGUSR1" in out.stdout


async def test_work_past_the_grace_period_is_handed_back(bus: Bus, namespace: str, start_agent: StartAgent) -> None:
    spec = {"role": "sleeper", "backend": {"python": {"entrypoint": f"{SAMPLES}:sleepy"}}}
    first = start_agent("sleeper", spec, replica="first", PODIUM_GRACE_SECONDS="0.5")
    task = new_task(namespace, "sleeper", "execute", 3)
    await bus.dispatch(task)
    await asyncio.to_thread(first.wait_until, lambda: first.metric("podium_agent_in_flight") == 1, 10, "in flight")
    first.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.proc.wait, 10) == 0
    assert await bus.get_result(task) is None
    await asyncio.to_thread(start_agent, "sleeper", spec, replica="second")
    result = await bus.wait_result(task, 15)
    assert result is not None and result.ok and result.replica == "second"


async def test_redis_outage_fails_readiness_not_liveness(
    fresh_redis: RedisServer, namespace: str, start_agent: StartAgent
) -> None:
    spec = {"role": "doc", "backend": {"python": {"entrypoint": "podium.demo.agents:documenter"}}}
    agent = start_agent("doc", spec, redis=fresh_redis.url)
    await asyncio.to_thread(fresh_redis.stop)
    await asyncio.to_thread(agent.wait_until, lambda: agent.probe("/readyz")[0] == 503, 10, "readyz 503")
    assert "redis" in agent.probe("/readyz")[1] and agent.probe("/healthz")[0] == 200
    await asyncio.to_thread(fresh_redis.start)
    await asyncio.to_thread(agent.wait_until, lambda: agent.probe("/readyz")[0] == 200, 15, "readyz 200 again")
    client = aioredis.Redis.from_url(fresh_redis.url)
    async with Bus(client) as bus:
        result = await run_task(bus, new_task(namespace, "doc", "execute", {"text": "back online"}))
    await client.aclose()
    assert result.ok and result.output["keywords"] == ["back", "online"]


async def test_stuck_sync_function_times_out_and_does_not_block_exit(
    bus: Bus, namespace: str, start_agent: StartAgent
) -> None:
    spec = {"role": "stuck", "backend": {"python": {"entrypoint": f"{SAMPLES}:sync_sleep"}}}
    agent = start_agent("stuck", spec)
    result = await run_task(bus, new_task(namespace, "stuck", "execute", 120, timeout_seconds=1))
    assert not result.ok and result.error == "timed out after 1s"
    quick = await run_task(bus, new_task(namespace, "stuck", "execute", 0))
    assert quick.ok
    started = asyncio.get_running_loop().time()
    assert await asyncio.to_thread(agent.stop, 15) == 0
    assert asyncio.get_running_loop().time() - started < 5


def test_backend_that_cannot_start_exits_1(start_agent: StartAgent) -> None:
    spec = {"role": "x", "backend": {"python": {"entrypoint": "no_such_module_xyz:run"}}}
    agent = start_agent("broken", spec, wait=False)
    assert agent.proc.wait(20) == 1
    assert any("cannot import 'no_such_module_xyz'" in line["msg"] for line in agent.logs())
