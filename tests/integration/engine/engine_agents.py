"""The python backend of the engine tests' `podium agent` processes.

Every call is logged in Redis (who ran which step, how often) so tests can assert what the engine did. What an
agent does is set per agent by the test in ``t:<ns>:mode:<agent>`` (JSON): ``fail`` (fail the first n calls),
``fail_always``, ``sleep`` (seconds), ``output`` (answer this), ``price``/``seconds``/``decline`` (bids),
``score`` (reviews), ``gain`` (how much an explorer improves the best solution).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["PODIUM_REDIS_URL"])
    return _client


def step_of(task_id: str) -> str:
    """``<uid>:<step>:<attempt>`` -> ``<step>``."""
    return task_id.split(":")[1]


def behave(task: Any) -> Any:
    r = client()
    ns, agent, kind = task.namespace, task.agent, str(task.kind)
    uid, step = task.id.split(":")[0], step_of(task.id)
    r.incr(f"t:{ns}:count:{uid}:{step}")
    r.rpush(f"t:{ns}:log:{uid}", json.dumps([agent, kind, step]))
    mode = json.loads(r.get(f"t:{ns}:mode:{agent}") or "{}")
    if mode.get("sleep"):
        time.sleep(float(mode["sleep"]))
    if mode.get("fail") and r.incr(f"t:{ns}:fails:{agent}") <= int(mode["fail"]):
        raise RuntimeError(f"{agent}: injected failure")
    if mode.get("fail_always"):
        raise RuntimeError(f"{agent}: always fails")
    if "output" in mode:
        return mode["output"]
    data = task.input
    if kind == "explore":
        best = (data.get("best") or {}).get("solution") or {"value": 0.0}
        return {"value": round(best["value"] + float(mode.get("gain", 0.1)), 6), "by": agent}
    if kind == "evaluate":
        return {"scores": [min(1.0, float(s.get("value", 0.0))) for s in data["solutions"]]}
    if kind == "propose":
        return {agent: data["round"]}
    if kind == "review":
        return {"score": float(mode.get("score", 0.8))}
    if kind == "bid":
        if mode.get("decline"):
            return {"decline": True}
        return {"price": float(mode.get("price", 1.0)), "estimatedSeconds": float(mode.get("seconds", 10))}
    if kind == "plan":
        return mode.get("plan", {"plan": "split evenly"})
    if kind == "synthesize":
        return {"synthesizedBy": agent, "from": data}
    return {"agent": agent, "input": data}
