"""What the reliability tests measure after a fault: every task's result, how often each was recorded and started.

``Outcome.check()`` is the bar every fault must clear: 0 lost (a result for every task, all ok), 0 recorded twice
(each task id once in its agent's result stream), nothing left in the inbox, nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.keys import AgentKeys
from podium.dataplane.messages import Result, Task
from tests.support.agent_processes import AgentFleet


def work_tasks(ns: str, agent: str, count: int, ms: float, prefix: str = "t") -> list[Task]:
    return [
        Task(id=f"{prefix}{i}", kind="execute", input={"n": i, "ms": ms}, namespace=ns, agent=agent)
        for i in range(count)
    ]


async def recorded(redis: aioredis.Redis, ns: str, agent: str) -> Counter[str]:
    """How many times each task id appears in the agent's result stream (recordings, not deliveries)."""
    rows = await redis.xrange(AgentKeys(ns, agent).results)
    return Counter((f.get(b"i") or b"").decode() for _id, f in rows)


async def results_within(redis_url: str, tasks: list[Task], timeout: float) -> dict[str, Result]:  # noqa: ASYNC109
    """Every result recorded within ``timeout`` seconds, read through a new client (the fault may have broken the
    test's own connections), retried through errors."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got: dict[str, Result] = {}
    while len(got) < len(tasks) and loop.time() < deadline:
        client = connect(redis_url)
        try:
            async with Bus(client) as bus:
                waiting = [t for t in tasks if t.id not in got]
                got.update(await bus.wait_results(waiting, min(5.0, max(0.1, deadline - loop.time()))))
        except RedisError:
            await asyncio.sleep(0.5)
        finally:
            await client.aclose()
    return got


@dataclass
class Outcome:
    tasks: list[Task]
    results: dict[str, Result]
    recorded: Counter[str]
    starts: Counter[str]
    backlog: int
    dead_letters: int
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(1 for t in self.tasks if t.id not in self.results or not self.results[t.id].ok)

    @property
    def recorded_twice(self) -> int:
        return sum(1 for n in self.recorded.values() if n > 1)

    @property
    def re_executions(self) -> int:
        """Starts beyond the first, over every task (a task started twice counts 1)."""
        return sum(max(0, n - 1) for n in self.starts.values())

    def figures(self) -> dict[str, Any]:
        return {
            "tasks": len(self.tasks),
            "lost": self.lost,
            "recorded_twice": self.recorded_twice,
            "re_executions": self.re_executions,
            **self.notes,
        }

    def check(self) -> None:
        print("figures:", json.dumps(self.figures()))  # for docs/data-plane.md; shown with pytest -s
        missing = [t.id for t in self.tasks if t.id not in self.results]
        failed = {
            t.id: self.results[t.id].error for t in self.tasks if t.id in self.results and not self.results[t.id].ok
        }
        assert not missing and not failed, f"lost: {missing[:10]} missing, {dict(list(failed.items())[:5])} failed"
        assert self.recorded == Counter({t.id: 1 for t in self.tasks}), "a result recorded twice, or not at all"
        assert self.backlog == 0 and self.dead_letters == 0
        assert all(self.starts[t.id] >= 1 for t in self.tasks)


async def outcome(redis_url: str, fleet: AgentFleet, tasks: list[Task], timeout: float) -> Outcome:  # noqa: ASYNC109
    results = await results_within(redis_url, tasks, timeout)
    client = connect(redis_url)
    try:
        async with Bus(client) as bus:
            counts = await recorded(client, fleet.namespace, fleet.agent)
            backlog = await bus.queue_depth(fleet.namespace, fleet.agent)
            letters = await bus.dead_letters(fleet.namespace, fleet.agent)
    finally:
        await client.aclose()
    return Outcome(tasks, results, counts, fleet.starts(), backlog, len(letters))
