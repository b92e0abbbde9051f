"""The message router against a real redis-server: an idle subscriber gets one message task at a time, however
many offers race for it (the router's loop and a message task that just finished both offer)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.mailbox import Mailbox
from podium.engine.directory import AgentDirectory, AgentInfo
from podium.engine.messaging import Router

NAME = "router"


class SlowMailbox(Mailbox):
    """A real mailbox whose looks come back late, as on a busy Redis: offers made at once all see the messages
    before any of them acts on what it saw."""

    async def take(self, agent: str, types: Any, keys: Any, *, consume: bool = True) -> Any:
        told = await super().take(agent, types, keys, consume=consume)
        if not consume:
            await asyncio.sleep(0.05)
        return told


class Run:
    """The part of a run context the router uses; its message tasks take each one's messages, as prepare does,
    and hold until released."""

    def __init__(self, mailbox: Mailbox, agents: list[AgentInfo]) -> None:
        self.mailbox = mailbox
        self.directory = AgentDirectory(agents)
        self.notes: list[str] = []
        self.in_flight = 0
        self.most_at_once = 0
        self.delivered: list[list[str]] = []
        self.release = asyncio.Event()

    def assigned(self, agent: str) -> int:
        return 0

    async def run_task(self, step: str, kind: Any, input: Any, *, agent: str, retries: int) -> None:
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            told = await self.mailbox.take(agent, ("section.*",), ())
            self.delivered.append([m.payload["section"] for m in told.messages])
            await self.release.wait()
        finally:
            self.in_flight -= 1


async def test_offers_that_race_start_one_message_task_and_every_message_reaches_the_agent_once(
    client: aioredis.Redis, bus: Bus, ns: str
) -> None:
    uid = uuid.uuid4().hex[:12]
    mailbox = SlowMailbox(client, ns, NAME, uid)
    tracker = AgentInfo(name="tracker", role="tracker", subscriptions=("section.*",), message_tasks=True)
    run = Run(mailbox, [tracker])
    router = Router(run, mailbox)  # type: ignore[arg-type]
    await bus.publish(f"{ns}/{NAME}", "section.done", {"section": "intro"}, "writer-1")
    # Offers made at once (the router's loop, a message task that just ended): all look before any starts a task.
    await asyncio.gather(router._offer(tracker), router._offer(tracker), router._offer(tracker))
    await asyncio.sleep(0.2)
    await bus.publish(f"{ns}/{NAME}", "section.done", {"section": "details"}, "writer-2")
    await router._offer(tracker)  # busy: the running task's successor brings it
    assert len(router.running) == 1 and run.most_at_once == 1
    run.release.set()
    for _ in range(50):  # the first task ends and offers again: one more task, for "details"
        await asyncio.sleep(0.05)
        if len(run.delivered) == 2 and not router.running:
            break
    # Each message task ends with an offer of its own; let those finish before the client closes.
    await asyncio.gather(*(t for t in asyncio.all_tasks() if t.get_name().startswith("message-")))
    assert run.most_at_once == 1, "two message tasks ran at once for one agent"
    assert run.delivered == [["intro"], ["details"]]
