"""A task that kills its replica, under a replica restarted with the same name (as Kubernetes restarts a container in
its pod): handed out at most ``max_deliveries`` times (5), then dead-lettered with its reason and an error result,
so its producer learns at once; the tasks that were running beside it all finish, none dead-lettered."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.messages import Result, Task
from tests.support.agent_processes import AgentFleet

MAX_DELIVERIES = 5  # the Bus default, which `podium agent` uses


def task(ns: str, task_id: str, **data: object) -> Task:
    return Task(id=task_id, kind="execute", input=data, namespace=ns, agent="victim")


async def test_a_poison_task_is_delivered_at_most_n_times_under_a_same_name_replica(
    redis_url: str, ns: str, tmp_path: Path
) -> None:
    innocents = [task(ns, f"i{n}", n=n, ms=400) for n in range(7)]
    poison = task(ns, "poison", poison=True)
    everything = [*innocents, poison]
    client = aioredis.Redis.from_url(redis_url)
    fleet = AgentFleet(redis_url, ns, "victim", tmp_path, concurrency=4, lease_seconds=1.0)
    try:
        async with Bus(client) as bus:
            # One call: the poison sits in the replica's first batch of 4, beside three innocents.
            await bus.dispatch_many([innocents[0], innocents[1], poison, *innocents[2:]])
            fleet.start("victim-0", wait=False)
            results: dict[str, Result] = {}
            restarts = 0
            while len(results) < len(everything) and restarts <= 2 * MAX_DELIVERIES:
                if not fleet.alive("victim-0"):
                    fleet.restart("victim-0")  # same name: its pending entries are its own again
                    restarts += 1
                waiting = [t for t in everything if t.id not in results]
                results.update(await bus.wait_results(waiting, 0.5))
            assert set(results) == {t.id for t in everything}, fleet.logs[-1].read_text()[-3000:]
            letters = await bus.dead_letters(ns, "victim")
        starts = fleet.starts()
    finally:
        fleet.stop_all()
        await client.aclose()

    # The poison: exactly N deliveries, each one killed its replica; then a dead letter and an error result.
    assert starts["poison"] == MAX_DELIVERIES and restarts == MAX_DELIVERIES
    error = results["poison"]
    reason = f"handed out {MAX_DELIVERIES} times (max {MAX_DELIVERIES}) without a result"
    assert not error.ok and error.error is not None and error.error.startswith(f"dead-lettered: {reason}")
    [letter] = letters
    assert letter.deliveries == MAX_DELIVERIES and letter.reason.startswith(reason)
    assert Task.from_json(letter.raw).id == "poison"
    # The innocents: all finished. Those killed beside it were handed out with it once more, then each alone.
    assert all(results[t.id].ok and results[t.id].output == {"n": t.input["n"]} for t in innocents)
    assert max(starts[t.id] for t in innocents) <= 3
