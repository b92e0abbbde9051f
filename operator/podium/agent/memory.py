"""What an agent remembers, and what of it goes in front of a task's prompt (spec.memory; llm backend only).

Before a task the runtime reads the agent's turns in the task's run and, if the Agent named a memory, that memory's
entries from other runs; :func:`shown` keeps the newest that fit in ``maxTokens`` (this run's first, then earlier
runs'), oldest first as the model reads them, and drops the rest: nothing is summarised (a summary would cost a
model call per task and hide what the agent really said). Turns of the same step (a retry) are left out, so a
retry does not see the answer that was rejected. After a task the backend answered, its turn is added to the run's
turns and to the named memory.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from podium.agent.backends.base import TaskLike
from podium.agent.backends.llm_prompts import content
from podium.api.memory import Memory
from podium.dataplane.memory import TURN_TEXT_CHARS, AgentMemory, Turn

log = logging.getLogger("podium.agent.memory")

# Characters per token of remembered text, estimated low so that what is shown fits (JSON and code run ~3; prose ~4).
CHARS_PER_TOKEN = 3
TURN_OVERHEAD_TOKENS = 8  # the chat template's markers around a user and an assistant turn

# The turns shown before the task being run, oldest first (set by the runtime around each task; the llm backend
# reads it). None or empty: no memory.
TASK_MEMORY: ContextVar[Sequence[Turn] | None] = ContextVar("podium_task_memory", default=None)


def estimate_tokens(turn: Turn) -> int:
    return math.ceil((len(turn.input) + len(turn.output)) / CHARS_PER_TOKEN) + TURN_OVERHEAD_TOKENS


def shown(run_turns: Sequence[Turn], earlier: Sequence[Turn], max_tokens: int) -> list[Turn]:
    """The turns put before the prompt, oldest first: from newest to oldest, this run's turns then the named
    memory's, as long as they fit in ``max_tokens``; the first that does not fit ends the list (pure)."""
    kept: list[Turn] = []
    used = 0
    for turn in [*run_turns, *earlier]:
        cost = estimate_tokens(turn)
        if used + cost > max_tokens:
            break
        kept.append(turn)
        used += cost
    return kept[::-1]


def run_of(task: TaskLike) -> str:
    """The uid of the task's run ("" for a task outside any run)."""
    uid = task.meta.get("uid") if isinstance(task.meta, dict) else None
    return uid if isinstance(uid, str) and task.orchestration else ""


def step_of(task: TaskLike) -> str:
    step = task.meta.get("step") if isinstance(task.meta, dict) else None
    return step if isinstance(step, str) else task.id


def turn_of(task: TaskLike, output: Any, now: float) -> Turn:
    """The task and its answer as one remembered turn: the content as the model read it, the answer as JSON."""
    answer = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return Turn(
        run=run_of(task),
        step=step_of(task),
        kind=str(task.kind),
        input=content(task.input)[:TURN_TEXT_CHARS],
        output=answer[:TURN_TEXT_CHARS],
        at=now,
    )


class MemoryKeeper:
    """The runtime's side: reads what a task is shown, records what it answered. Redis errors are logged and the
    task goes on without memory: forgetting is better than failing the work."""

    def __init__(self, redis: aioredis.Redis, namespace: str, agent: str, spec: Memory | None) -> None:
        self.spec = spec or Memory()
        self.store = AgentMemory(redis, namespace, agent)

    async def recall(self, task: TaskLike) -> list[Turn]:
        if self.spec.max_tokens <= 0:
            return []
        run, step = run_of(task), step_of(task)
        try:
            run_turns = [t for t in await self.store.run_turns(run) if t.step != step] if run else []
            earlier = [t for t in await self.store.recall(self.spec.name) if t.run != run] if self.spec.name else []
        except (RedisError, OSError, ValueError) as exc:
            log.warning(f"memory not read, the task runs without it: {exc}")
            return []
        return shown(run_turns, earlier, self.spec.max_tokens)

    async def record(self, task: TaskLike, output: Any) -> None:
        turn = turn_of(task, output, time.time())
        try:
            if turn.run:
                await self.store.add_run_turn(turn)
            if self.spec.name:
                await self.store.remember(
                    self.spec.name, turn, ttl_seconds=self.spec.ttl_seconds, max_bytes=self.spec.max_bytes
                )
        except (RedisError, OSError, ValueError) as exc:
            log.warning(f"memory not written: {exc}")
