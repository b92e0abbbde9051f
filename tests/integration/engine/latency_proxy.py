"""A loopback TCP proxy that holds every reply for a fixed delay: a network with a known round-trip time.

With replies held for ``delay`` seconds, an operation's wall time is (round trips x delay) plus a little local
work, so a test can tell one round trip from two by the clock, with real Redis behind the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        # Each chunk goes out `delay` after it arrived, in order: replies that arrive together leave together,
        # as on a real link, instead of queueing one delay behind another.
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            dst.write(chunk)
            await dst.drain()

    sender = asyncio.create_task(send())
    try:
        while chunk := await src.read(65536):
            queue.put_nowait((loop.time() + delay, chunk))
        queue.put_nowait((loop.time(), b""))
        await sender
    finally:
        sender.cancel()
        dst.close()


@contextlib.asynccontextmanager
async def latency_proxy(host: str, port: int, delay: float) -> AsyncIterator[tuple[str, int]]:
    """Listen on a free loopback port; forward to ``host:port``, replies delayed by ``delay`` seconds."""
    pumps: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        for task in (
            asyncio.create_task(_pump(reader, up_writer, 0.0)),
            asyncio.create_task(_pump(up_reader, writer, delay)),
        ):
            pumps.add(task)
            task.add_done_callback(pumps.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(pumps):
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await server.wait_closed()
