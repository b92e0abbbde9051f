"""Where the CPU of a task goes, to choose what to make cheaper next (reports only; make bench does not run it).

- ``wire``: CPU per request of one client on loopback, a single command and pipelines of 1 and 12, with redis-py's
  connection as it comes (a timer per reply, a Task per write), with no socket timeout at all (the floor of that
  bookkeeping), and with podium's wire (podium.dataplane.wire), in interleaved rounds.
- ``bus``: podium's bus and the raw redis-py loop of bench.bus side by side, CPU per task split into producer,
  workers and redis-server, and the server's own time per command (``INFO commandstats``).

    .venv/bin/python -m bench.costs [wire|bus]...
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from bench.bus import group_cpu_seconds, rig
from podium.dataplane.wire import WireRedis
from podium.dataplane.wire import wire as podium_wire
from podium_localcluster.redis_server import RedisServer

# name: (pool options, connection class, client class)
CLIENTS: dict[str, tuple[dict[str, Any], type[Connection], type[aioredis.Redis]]] = {
    "redis-py": ({}, Connection, aioredis.Redis),
    "no timeout": ({"socket_timeout": None}, Connection, aioredis.Redis),
    "podium wire": ({}, podium_wire(Connection), WireRedis),  # type: ignore[dict-item]
}


async def _cpu_us(client: aioredis.Redis, pipelined: int | None, n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        if pipelined is None:
            await client.hincrby("h", "f", 1)
        else:
            pipe = client.pipeline(transaction=False)
            for _ in range(pipelined):
                pipe.hincrby("h", "f", 1)
            await pipe.execute()
    return (time.process_time() - started) / n * 1e6


async def wire(rounds: int = 5, n: int = 3000) -> None:
    with RedisServer() as server:
        clients = {}
        for name, (kwargs, cls, client_class) in CLIENTS.items():
            pool = aioredis.ConnectionPool.from_url(server.url, **kwargs)
            pool.connection_class = cls
            clients[name] = client_class(connection_pool=pool)
        shapes: dict[str, int | None] = {"single": None, "pipeline of 1": 1, "pipeline of 12": 12}
        got: dict[tuple[str, str], list[float]] = {}
        for r in range(rounds):
            for name in list(clients) if r % 2 == 0 else reversed(list(clients)):
                for shape, size in shapes.items():
                    got.setdefault((name, shape), []).append(await _cpu_us(clients[name], size, n))
        print(f"client CPU per request, µs (median of {rounds} interleaved rounds of {n})")
        print(f"{'':14}" + "".join(f"{s:>16}" for s in shapes))
        for name in clients:
            print(f"{name:14}" + "".join(f"{statistics.median(got[name, s]):>16.0f}" for s in shapes))
        for c in clients.values():
            await c.aclose()


async def bus(rounds: int = 4, tasks: int = 20_000) -> None:
    names = ("podium", "raw")
    split: dict[str, list[tuple[float, ...]]] = {n: [] for n in names}
    stats: dict[str, dict[str, Any]] = {}
    async with contextlib.AsyncExitStack() as stack:
        systems = {n: await stack.enter_async_context(rig(n)) for n in names}
        for s in systems.values():
            await s.batch(5000, time.monotonic() + 5)
        for r in range(rounds):
            for n in names if r % 2 == 0 else reversed(names):
                s = systems[n]
                admin = redis.Redis.from_url(s.url)
                admin.config_resetstat()
                workers, server = group_cpu_seconds(s.pgids[:-1]), group_cpu_seconds(s.pgids[-1:])
                own, started = time.process_time(), time.perf_counter()
                done = await s.batch(tasks, time.monotonic() + 10)
                elapsed = time.perf_counter() - started
                split[n].append(
                    (
                        done / elapsed,
                        (time.process_time() - own) * 1e6 / done,
                        (group_cpu_seconds(s.pgids[:-1]) - workers) * 1e6 / done,
                        (group_cpu_seconds(s.pgids[-1:]) - server) * 1e6 / done,
                    )
                )
                stats[n] = {k: (v["calls"] / done, v["usec"] / done) for k, v in admin.info("commandstats").items()}
                admin.close()
    print(f"CPU per task, µs (median of {rounds} interleaved rounds of up to {tasks} tasks)")
    print(f"{'':8}{'tasks/s':>10}{'producer':>10}{'workers':>10}{'redis':>10}{'total':>10}")
    for n, rows in split.items():
        rate, *parts = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"{n:8}{rate:>10.0f}" + "".join(f"{p:>10.1f}" for p in parts) + f"{sum(parts):>10.1f}")
    for n, by_command in stats.items():
        print(f"{n}: redis-server time per task by command (last round; a function's commands also count in FCALL)")
        for command, (calls, usec) in sorted(by_command.items(), key=lambda kv: -kv[1][1])[:8]:
            print(f"  {command.removeprefix('cmdstat_'):24} {calls:7.3f} calls {usec:7.2f} µs")


def main(argv: list[str] | None = None) -> int:
    chosen = (argv if argv is not None else sys.argv[1:]) or ["wire", "bus"]
    for name in chosen:
        if name not in ("wire", "bus"):
            print(f"unknown part {name!r}: expected wire or bus", file=sys.stderr)
            return 2
    for name in chosen:
        asyncio.run(wire() if name == "wire" else bus())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
