"""The floor: a bare redis-py XREADGROUP/XACK loop replying on a stream; no validation, no dedupe, no leases.

PODIUM_BENCH_REDIS_URL=redis://... python -m bench._peers.raw_worker <consumer-name>
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

STREAM, GROUP, REPLIES = "raw:tasks", "workers", "raw:replies"


async def run(name: str) -> None:
    client = aioredis.Redis.from_url(os.environ["PODIUM_BENCH_REDIS_URL"])
    try:
        await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError:
        pass
    print("ready", flush=True)
    while True:
        reply: Any = await client.xreadgroup(GROUP, name, {STREAM: ">"}, count=200, block=100)
        for _stream, entries in reply.items() if isinstance(reply, dict) else reply or []:
            async with client.pipeline(transaction=False) as pipe:
                for entry_id, fields in entries:
                    pipe.xadd(REPLIES, {"i": fields[b"i"]}, maxlen=100_000, approximate=True)
                    pipe.xack(STREAM, GROUP, entry_id)
                await pipe.execute()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
