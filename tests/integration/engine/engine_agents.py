"""The python backend of the engine tests' `podium agent` processes.

Every call is logged in Redis (who ran which step, how often, with which input) so tests can assert what the
engine did. What an agent does is set per agent by the test in ``t:<ns>:mode:<agent>`` (JSON): ``fail`` (fail the
first n calls), ``fail_always``, ``sleep`` (seconds), ``output`` (answer this), ``price``/``seconds``/``decline``
(bids), ``score`` (reviews, in [0, 1]), ``gain`` (how much an explorer improves the best solution), ``plan``,
``span`` (make a span of that name with the OpenTelemetry API); for collaboration: ``write`` (``{key: value}``
written through ``stateUpdates`` by execute tasks, from the versions the task was told), ``publish``
(``[{type, payload}]`` published by execute tasks), ``vote`` (the choice of vote tasks), ``wait_for``
(``[agent, kind]``: an execute task waits until that agent ran a task of that kind), ``wait_write``
(``[key, writer]``: an execute task waits until the engine applied that writer's write of the key).
Each task's context is kept in ``t:<ns>:context:<uid>:<step>``.
Every other answer honours the engine's contract for its kind (``task.output_schema``): explorers' solutions are
``"value=<v> by=<agent>"`` texts that the evaluator scores as ``v``.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import redis

from podium.dataplane.keys import OrchestrationKeys

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["PODIUM_REDIS_URL"])
    return _client


def step_of(task_id: str) -> str:
    """``<uid>:<step>:<attempt>`` -> ``<step>``."""
    return task_id.split(":")[1]


def value_of(solution: Any) -> float:
    found = re.search(r"value=([0-9.]+)", solution or "")
    return float(found.group(1)) if found else 0.0


def behave(task: Any) -> Any:
    r = client()
    ns, agent, kind = task.namespace, task.agent, str(task.kind)
    uid, step = task.id.split(":")[0], step_of(task.id)
    r.incr(f"t:{ns}:count:{uid}:{step}")
    r.rpush(f"t:{ns}:log:{uid}", json.dumps([agent, kind, step]))
    r.set(f"t:{ns}:input:{uid}:{step}", json.dumps(task.input))
    r.set(f"t:{ns}:context:{uid}:{step}", json.dumps(task.context))
    mode = json.loads(r.get(f"t:{ns}:mode:{agent}") or "{}")
    if kind == "execute" and "wait_for" in mode:
        _wait_for(r, f"t:{ns}:log:{uid}", mode["wait_for"])
    if kind == "execute" and "wait_write" in mode:
        _wait_write(r, task.orchestration, *mode["wait_write"])
    if mode.get("span"):
        # A backend's own instrumentation, through the OpenTelemetry API: it should land in the task's trace.
        from opentelemetry import trace

        with trace.get_tracer("user-backend").start_as_current_span(str(mode["span"])):
            pass
    if mode.get("sleep"):
        time.sleep(float(mode["sleep"]))
    if mode.get("fail") and r.incr(f"t:{ns}:fails:{agent}") <= int(mode["fail"]):
        raise RuntimeError(f"{agent}: injected failure")
    if mode.get("fail_always"):
        raise RuntimeError(f"{agent}: always fails")
    if kind == "vote":
        return {"choice": int(mode.get("vote", 0)), "reason": f"{agent} chose {mode.get('vote', 0)}"}
    if kind == "message":
        return {"agent": agent, "got": [m["type"] for m in task.input["messages"]]}
    if kind == "execute" and ("write" in mode or "publish" in mode):
        output = mode.get("output", {"agent": agent})
        return {"output": output, "stateUpdates": mode.get("write", {}), "messages": mode.get("publish", [])}
    if "output" in mode:
        return mode["output"]
    data = task.input
    if kind == "explore":
        return {"solution": f"value={round(value_of(data.get('best')) + float(mode.get('gain', 0.1)), 6)} by={agent}"}
    if kind == "evaluate":
        return {"scores": [min(10, round(value_of(s) * 10)) for s in data["solutions"]]}
    if kind == "propose":
        return {"solution": f"{agent} in round {data['round']}"}
    if kind == "review":
        return {"score": round(float(mode.get("score", 0.8)) * 10), "comment": f"reviewed by {agent}"}
    if kind == "bid":
        if mode.get("decline"):
            return {"decline": True}
        return {"price": float(mode.get("price", 1.0)), "estimatedSeconds": float(mode.get("seconds", 10))}
    if kind == "plan":
        if "plan" in mode:
            return mode["plan"]
        if "teams" in data:
            return {"assignments": {team: [f"the {team} part"] for team in data["teams"]}}
        return {"tasks": [{"name": "only", "description": "all of it", "capabilities": []}]}
    if kind == "synthesize":
        return {"answer": f"synthesis by {agent} of {', '.join(sorted(data))}"}
    return {"agent": agent, "input": data}


def _wait_for(r: redis.Redis, log_key: str, who: list[str], timeout: float = 60.0) -> None:
    """Until the run's log shows ``who`` = [agent, kind] ran (a deterministic order between two agents' tasks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(json.loads(row)[:2] == who for row in r.lrange(log_key, 0, -1)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{who} did not run within {timeout:g}s")


def _wait_write(r: redis.Redis, orchestration: str, key: str, writer: str, timeout: float = 60.0) -> None:
    """Until the run's shared-state history shows ``writer``'s write of ``key``."""
    history = OrchestrationKeys.of(orchestration).state_keys.history
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, fields in r.xrange(history):
            if fields.get(b"key") == key.encode() and fields.get(b"writer") == writer.encode():
                return
        time.sleep(0.05)
    raise RuntimeError(f"no write of {key} by {writer} within {timeout:g}s")
