"""Messages by type: what reaches which agent, and when.

Every message of a run is one entry of its event stream (``Bus.publish``): the strategy's (``run.started``,
``task.finished``, ``state.resolved``, ...), the agents' (``messages`` in their answers, sender = the agent) and
people's (``podium run broadcast``, sender ``user:<name>``). That stream is the run's message history. An agent
whose ``spec.subscriptions`` match a message's type gets it with its next task of the run
(``task.context.messages``; taken atomically with the task, see ``podium.dataplane.mailbox``), and the delivered
copy is appended to its own direct stream (its history, ``podium run history NAME --agent A``). Agents that did
not subscribe never see it; an agent never gets its own messages.

An idle subscriber that declares ``spec.messageTasks`` does not wait for its next task: the :class:`Router`
follows the event stream while the strategy runs and sends it a ``message`` task (input ``{messages}``) as soon as
a message for it arrives and it has no task of the run in flight (else as soon as that task ends). When the
strategy returns, messages already published are still routed and the message tasks started finish before the run
ends (within its limits). Message task steps are ``message-<agent>-<newest message id>``: journaled like every
step, so a restart does not send them again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from podium.dataplane.collab import matches
from podium.dataplane.mailbox import Mailbox
from podium.dataplane.messages import TaskKind
from podium.dataplane.records import Event
from podium.engine.directory import AgentInfo

if TYPE_CHECKING:
    from podium.engine.context import RunContext

MESSAGE_STEP = "message-"


def triggers(event: Event) -> bool:
    """Whether a message may start message tasks: not the engine's own news about message tasks (each would
    announce its end and start the next one, for ever)."""
    if event.sender != "engine" or not isinstance(event.payload, dict):
        return True
    return not str(event.payload.get("step", "")).startswith(MESSAGE_STEP)


def listeners(agents: list[AgentInfo], event: Event) -> list[AgentInfo]:
    """The agents a message may start a message task for: subscribed to its type, declaring messageTasks, not its
    sender."""
    return [a for a in agents if a.message_tasks and a.name != event.sender and matches(a.subscriptions, event.type)]


def freed(agents: list[AgentInfo], event: Event) -> list[AgentInfo]:
    """The listeners to look at again when a step ends: each agent that worked on it is idle now (one whose attempt
    failed over to another agent too, and the event names only the last), and the messages that came meanwhile go
    out now, not with a next task of the run that may never come. The offer passes over the busy ones."""
    if event.sender != "engine" or event.type != "task.finished":
        return []
    return [a for a in agents if a.message_tasks]


class Router:
    """Sends idle subscribers their messages as ``message`` tasks while the strategy runs; once it returns
    (:meth:`stop`), routes what is left and lets the message tasks started finish."""

    def __init__(self, ctx: RunContext, mailbox: Mailbox, block_ms: int = 500) -> None:
        self.ctx = ctx
        self.mailbox = mailbox
        self.block_ms = block_ms
        self.agents = [a for a in ctx.directory.all() if a.message_tasks and a.subscriptions]
        self.running: dict[str, asyncio.Task[None]] = {}
        # One offer at a time per agent: the router's loop and a finished message task both offer, and two offers
        # that both looked before either started a task would send the agent two message tasks at once (their
        # read-modify-write of one key would then lose an update).
        self._offering: dict[str, asyncio.Lock] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Until :meth:`stop` (then it drains) or cancellation (then message tasks in flight are abandoned)."""
        if not self.agents:
            return
        cursor = await self.mailbox.router_cursor() or "0-0"
        try:
            # A restart first looks at every listener once: messages that arrived while nobody routed them.
            for agent in self.agents:
                await self._offer(agent)
            while not self._stop.is_set():
                cursor = await self._route(cursor, await self.mailbox.follow(cursor, self.block_ms))
            cursor = await self._route(cursor, await self.mailbox.follow(cursor, None))
            while self.running:
                await asyncio.gather(*self.running.values(), return_exceptions=True)
        finally:
            for job in self.running.values():
                job.cancel()
            for job in list(self.running.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job

    async def _route(self, cursor: str, events: list[Event]) -> str:
        for event in events:
            cursor = event.id
            if triggers(event):
                for agent in {a.name: a for a in listeners(self.agents, event) + freed(self.agents, event)}.values():
                    await self._offer(agent)
        if events:
            await self.mailbox.set_router_cursor(cursor)
        return cursor

    async def _offer(self, agent: AgentInfo) -> None:
        """A message task for ``agent`` if it is idle and has messages waiting."""
        async with self._offering.setdefault(agent.name, asyncio.Lock()):
            if agent.name in self.running or self.ctx.assigned(agent.name) > 0:
                return  # busy: its task's end offers again (the message task's successor, or freed by task.finished)
            waiting = await self.mailbox.take(agent.name, agent.subscriptions, (), consume=False)
            if not waiting.messages:
                return
            step = f"{MESSAGE_STEP}{agent.name}-{waiting.messages[-1].id}"
            self.running[agent.name] = asyncio.create_task(self._deliver(agent, step), name=step)

    async def _deliver(self, agent: AgentInfo, step: str) -> None:
        from podium.engine.context import TaskFailed

        try:
            await self.ctx.run_task(step, TaskKind.MESSAGE, None, agent=agent.name, retries=0)
        except TaskFailed as exc:
            self.ctx.notes.append(f"message task for {agent.name} failed: {exc}")
        finally:
            self.running.pop(agent.name, None)
        await self._offer(agent)  # messages that came while it was busy
