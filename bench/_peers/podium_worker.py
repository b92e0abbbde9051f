"""A Podium agent replica reduced to the bus: fetch tasks, 'run' them (optional delay), complete in batches.

Used by the bus benchmark and by the crash tests (which SIGKILL it while it holds work):
    python -m bench._peers.podium_worker --url redis://127.0.0.1:PORT/0 --namespace ns --agent a --replica r1
It prints ``ready`` once its consumer group exists, then ``fetched <n>`` whenever it has work in hand.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.messages import Result


async def run(args: argparse.Namespace) -> None:
    client = connect(args.url)
    bus = Bus(client)
    consumer = bus.consumer(args.namespace, args.agent, args.replica, lease_seconds=args.lease)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.join()
    print("ready", flush=True)
    while not stop.is_set():
        batch = await consumer.fetch(args.batch, args.block_ms)
        if not batch:
            continue
        print(f"fetched {len(batch)}", flush=True)
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        now = time.time()
        done = [
            (
                d,
                Result(
                    task_id=d.task.id,
                    attempt=d.task.attempt,
                    ok=True,
                    output=d.task.input,
                    agent=args.agent,
                    replica=args.replica,
                    finished_at=now,
                ),
            )
            for d in batch
        ]
        await consumer.complete_many(done)
    await consumer.leave()
    await bus.close()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--agent", default="noop")
    parser.add_argument("--replica", required=True)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--block-ms", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="simulated work per batch")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
