"""Message-bus benchmark: Podium's bus against Celery, Dramatiq, taskiq and a raw redis-py loop.

Same workload everywhere: a producer sends no-op tasks to 2 worker processes and collects every result.
- throughput: as many tasks as the system will take (bounded by a task count and a time limit);
- latency: p50/p99 round trip at a fixed offered rate (open loop: tasks are sent on schedule whether or
  not earlier ones have finished), measured from the scheduled send time to the result in the producer;
- recovery (Podium only): kill -9 a worker holding in-flight tasks, time until all finish on the survivor.
Each system gets its own redis-server on a free loopback port.

    python -m bench.bus [--quick] [--json] [--only podium,raw]

Podium and raw redis-py run side by side in interleaved rounds; the podium/raw ratio is the median of the
rounds' paired ratios (the machine's load moves more between minutes than between the two systems).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from podium.dataplane.bus import Bus
from podium.dataplane.connection import connect
from podium.dataplane.consumer import DEFAULT_LEASE_SECONDS
from podium.dataplane.messages import Task
from podium_localcluster.processes import process_stats
from podium_localcluster.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("podium", "raw", "taskiq", "dramatiq", "celery")
DEFAULT = ("podium", "raw", "dramatiq", "celery")  # the peers; taskiq with --only


@dataclass
class Plan:
    tasks: int  # throughput round: at most this many tasks...
    seconds: float  # ...and at most this long
    rate: int  # latency run: offered tasks per second...
    rate_seconds: float  # ...for this long
    rounds: int  # throughput rounds of podium and raw redis-py, interleaved (the ratio is their median)
    latency_rounds: int  # latency runs of podium and raw, interleaved


FULL = Plan(tasks=20_000, seconds=10, rate=1000, rate_seconds=4, rounds=7, latency_rounds=3)
QUICK = Plan(tasks=10_000, seconds=4, rate=1000, rate_seconds=2, rounds=5, latency_rounds=1)
# Measured side by side, round after round: the ratio between them is the figure that matters, and the machine's
# load moves too much between minutes for two separate runs to compare.
PAIRED = ("podium", "raw")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pooled(url: str, *, podium: bool = False) -> aioredis.Redis:
    # A blocking pool: a burst of concurrent senders waits for a connection instead of failing.
    if podium:  # podium's own clients (podium.dataplane.wire); "raw" stays plain redis-py
        return connect(url, pool_class=aioredis.BlockingConnectionPool, max_connections=64)
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=64))


def peer_env(url: str) -> dict[str, str]:
    return {**os.environ, "PODIUM_BENCH_REDIS_URL": url, "PYTHONPATH": f"{ROOT}:{ROOT / 'operator'}"}


def spawn(args: list[str], url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=ROOT, env=peer_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def start_piped(args: list[str], url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(args, cwd=ROOT, env=peer_env(url), stdout=subprocess.PIPE, text=True)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


async def windowed(n: int, deadline: float, window: int, job: Callable[[int], Awaitable[None]]) -> int:
    """Run job(0..n-1) with at most `window` in flight, starting none after the deadline; returns how many
    succeeded (a failed job counts as not finished rather than ending the run)."""
    slots = asyncio.Semaphore(window)
    finished = 0

    async def run(i: int) -> None:
        nonlocal finished
        try:
            await job(i)
            finished += 1
        finally:
            slots.release()

    running = []
    for i in range(n):
        if time.monotonic() > deadline:
            break
        await slots.acquire()
        running.append(asyncio.create_task(run(i)))
    await asyncio.gather(*running, return_exceptions=True)
    return finished


class System:
    """One system under test: its workers, a batched throughput run, and a single send-and-wait."""

    name = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pgids: list[int] = []  # its workers' and redis-server's process groups, for CPU accounting

    def workers(self) -> list[list[str]]:
        raise NotImplementedError

    async def start(self) -> None:
        return None

    async def batch(self, n: int, deadline: float) -> int:
        """Send up to n tasks, stop sending at the deadline, wait for every sent one; returns how many finished."""
        raise NotImplementedError

    async def one(self, i: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class PodiumSystem(System):
    name = "podium"
    chunk, window = 500, 8

    def workers(self) -> list[list[str]]:
        return [
            [sys.executable, "-m", "bench._peers.podium_worker", "--url", self.url, "--replica", f"w{i}"]
            for i in (1, 2)
        ]

    async def start(self) -> None:
        self.client = pooled(self.url, podium=True)
        self.bus = Bus(self.client, max_queue=1_000_000)
        self.seq = 0

    def _task(self, i: int) -> Task:
        self.seq += 1
        return Task(id=f"b{self.seq}", kind="execute", input=i, namespace="bench", agent="noop")

    async def batch(self, n: int, deadline: float) -> int:
        slots = asyncio.Semaphore(self.window)
        finished = 0

        async def chunk(tasks: list[Task]) -> None:
            nonlocal finished
            try:
                await self.bus.dispatch_many(tasks)
                got = await self.bus.wait_results(tasks, 60)
                finished += len(got)
            finally:
                slots.release()

        running = []
        for start in range(0, n, self.chunk):
            if time.monotonic() > deadline:
                break
            await slots.acquire()
            running.append(asyncio.create_task(chunk([self._task(i) for i in range(start, start + self.chunk)])))
        await asyncio.gather(*running)
        return finished

    async def one(self, i: int) -> None:
        task = self._task(i)
        await self.bus.dispatch(task)
        if await self.bus.wait_result(task, 30) is None:
            raise TimeoutError(task.id)

    async def close(self) -> None:
        await self.bus.close()
        await self.client.aclose()


class RawSystem(System):
    name = "raw"
    chunk, window = 500, 8

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "bench._peers.raw_worker", f"w{i}"] for i in (1, 2)]

    async def start(self) -> None:
        self.client = pooled(self.url)
        self.waiters: dict[bytes, asyncio.Future[None]] = {}
        self.seq = 0
        last = await self.client.xrevrange("raw:replies", count=1)
        self.last = last[0][0] if last else b"0-0"
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            streams: Any = {"raw:replies": self.last}
            reply: Any = await self.client.xread(streams, count=2000, block=100)
            for _s, entries in reply.items() if isinstance(reply, dict) else reply or []:
                for entry_id, fields in entries:
                    self.last = entry_id
                    fut = self.waiters.pop(fields[b"i"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)

    def _ids(self, n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            self.seq += 1
            out.append(str(self.seq).encode())
        return out

    async def _send(self, ids: list[bytes]) -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        futs = []
        for i in ids:
            futs.append(loop.create_future())
            self.waiters[i] = futs[-1]
        async with self.client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.xadd("raw:tasks", {"i": i, "payload": b'{"input":1}'})
            await pipe.execute()
        return futs

    async def batch(self, n: int, deadline: float) -> int:
        slots = asyncio.Semaphore(self.window)
        finished = 0

        async def chunk(ids: list[bytes]) -> None:
            nonlocal finished
            try:
                done, _ = await asyncio.wait(await self._send(ids), timeout=60)
                finished += len(done)
            finally:
                slots.release()

        running = []
        for _start in range(0, n, self.chunk):
            if time.monotonic() > deadline:
                break
            await slots.acquire()
            running.append(asyncio.create_task(chunk(self._ids(self.chunk))))
        await asyncio.gather(*running)
        return finished

    async def one(self, i: int) -> None:
        [fut] = await self._send(self._ids(1))
        await asyncio.wait_for(fut, 30)

    async def close(self) -> None:
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.client.aclose()


class TaskiqSystem(System):
    name = "taskiq"
    window = 1000

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "taskiq", "worker", "bench._peers.taskiq_app:broker", "--workers", "2"]]

    async def start(self) -> None:
        os.environ["PODIUM_BENCH_REDIS_URL"] = self.url
        from bench._peers import taskiq_app

        self.app = taskiq_app
        await taskiq_app.broker.startup()

    async def _run(self, i: int) -> None:
        handle = await self.app.noop.kiq(i)
        result = await handle.wait_result(check_interval=0.002, timeout=60)
        if result.is_err:
            raise RuntimeError(str(result.error))

    async def batch(self, n: int, deadline: float) -> int:
        return await windowed(n, deadline, self.window, self.one)

    async def one(self, i: int) -> None:
        await self._run(i)

    async def close(self) -> None:
        await self.app.broker.shutdown()


class ThreadedSystem(System):
    """Celery and Dramatiq clients are synchronous: the producer drives them from a thread pool."""

    threads = 64

    async def start(self) -> None:
        self.pool = ThreadPoolExecutor(self.threads)

    def send_and_wait(self, i: int) -> None:
        raise NotImplementedError

    async def batch(self, n: int, deadline: float) -> int:
        return await windowed(n, deadline, self.threads * 2, self.one)

    async def one(self, i: int) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pool, self.send_and_wait, i)

    async def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class CelerySystem(ThreadedSystem):
    name = "celery"

    def workers(self) -> list[list[str]]:
        base = [sys.executable, "-m", "celery", "-A", "bench._peers.celery_app", "worker", "--pool=solo"]
        flags = ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"]
        return [[*base, "-n", f"w{i}@bench", *flags] for i in (1, 2)]

    async def start(self) -> None:
        os.environ["PODIUM_BENCH_REDIS_URL"] = self.url
        from bench._peers import celery_app

        self.app = celery_app
        await super().start()

    def send_and_wait(self, i: int) -> None:
        self.app.noop.apply_async((i,)).get(timeout=60)


class DramatiqSystem(ThreadedSystem):
    name = "dramatiq"

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "dramatiq", "bench._peers.dramatiq_app", "--processes", "2", "--threads", "8"]]

    async def start(self) -> None:
        os.environ["PODIUM_BENCH_REDIS_URL"] = self.url
        from bench._peers import dramatiq_app

        self.app = dramatiq_app
        await super().start()

    def send_and_wait(self, i: int) -> None:
        self.app.noop.send(i).get_result(block=True, timeout=60_000)


CLASSES: dict[str, type[System]] = {
    c.name: c for c in (PodiumSystem, RawSystem, TaskiqSystem, DramatiqSystem, CelerySystem)
}


async def open_loop(one: Callable[[int], Awaitable[None]], rate: int, seconds: float) -> tuple[list[float], int]:
    """Send ``rate`` tasks/s for ``seconds`` on a fixed schedule; latencies (ms) from scheduled send to result."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0

    async def timed(i: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await one(i)
            latencies.append((time.perf_counter() - scheduled) * 1000)
        except Exception:
            errors += 1

    start = time.perf_counter()
    running = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        running.append(asyncio.create_task(timed(i, scheduled)))
    await asyncio.gather(*running)
    return latencies, errors


@contextlib.asynccontextmanager
async def rig(name: str) -> AsyncIterator[System]:
    """One system up and warmed: its own redis-server, its workers, its producer; torn down on exit."""
    with RedisServer() as server:
        system = CLASSES[name](server.url)
        procs = [spawn(args, server.url) for args in system.workers()]
        assert server.process is not None
        system.pgids = [p.pid for p in procs] + [os.getpgid(server.process.pid)]
        try:
            await system.start()
            await asyncio.wait_for(asyncio.gather(*(system.one(-i) for i in range(1, 51))), 60)  # warm up
            yield system
            await system.close()
        finally:
            stop(procs)


TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgids: list[int]) -> float:
    """CPU time (user + system) of every live process in these process groups: a system's workers and their
    children (dramatiq forks its worker processes), and its redis-server."""
    # field 5 of stat is the process group; 14 and 15 utime and stime
    total = sum(int(f[11]) + int(f[12]) for _, f in process_stats() if int(f[2]) in pgids)
    return total / TICK


@dataclass
class Round:
    tasks_per_s: float
    cpu_us_per_task: float  # producer + workers + redis-server: what a saturated machine divides its cores by


async def throughput(system: System, plan: Plan) -> Round:
    cpu_before, own_before = group_cpu_seconds(system.pgids), time.process_time()
    started = time.perf_counter()
    done = await system.batch(plan.tasks, time.monotonic() + plan.seconds)
    elapsed = time.perf_counter() - started
    cpu = group_cpu_seconds(system.pgids) - cpu_before + time.process_time() - own_before
    return Round(done / elapsed, cpu * 1e6 / max(1, done))


async def latency(system: System, plan: Plan) -> dict[str, Any]:
    latencies, errors = await open_loop(system.one, plan.rate, plan.rate_seconds)
    return {
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "mean_ms": round(statistics.fmean(latencies), 3) if latencies else None,
        "latency_tasks": len(latencies),
        "errors": errors,
    }


def summarise(rounds: list[Round], lat: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    return {
        "tasks_per_s": round(statistics.median(r.tasks_per_s for r in rounds), 1),
        "rounds_tasks_per_s": [round(r.tasks_per_s) for r in rounds],
        "cpu_us_per_task": round(statistics.median(r.cpu_us_per_task for r in rounds), 1),
        "p50_ms": round(statistics.median(x["p50_ms"] for x in lat), 3),
        "p99_ms": round(statistics.median(x["p99_ms"] for x in lat), 3),
        "offered_per_s": plan.rate,
        "errors": sum(x["errors"] for x in lat),
    }


async def measure(name: str, plan: Plan) -> dict[str, Any]:
    """A system on its own: one throughput round and one latency run (the peers, an order of magnitude slower)."""
    async with rig(name) as system:
        rate = await throughput(system, plan)
        lat = await latency(system, plan)
    return summarise([rate], [lat], plan)


async def measure_paired(names: tuple[str, ...], plan: Plan) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Systems up side by side, throughput rounds interleaved (the order alternating each round), then latency runs
    the same way; the paired ratio of each round and its median."""
    rates: dict[str, list[Round]] = {n: [] for n in names}
    lats: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    async with contextlib.AsyncExitStack() as stack:
        systems = {n: await stack.enter_async_context(rig(n)) for n in names}
        for n in names:  # one discarded round each: pools, scripts and the workers' first batches
            await throughput(systems[n], plan)
        for r in range(plan.rounds):
            for n in names if r % 2 == 0 else reversed(names):
                rates[n].append(await throughput(systems[n], plan))
        for r in range(plan.latency_rounds):
            for n in names if r % 2 == 0 else reversed(names):
                lats[n].append(await latency(systems[n], plan))
    first, second = names
    paired = [a.tasks_per_s / b.tasks_per_s for a, b in zip(rates[first], rates[second], strict=True)]
    cpu = [b.cpu_us_per_task / a.cpu_us_per_task for a, b in zip(rates[first], rates[second], strict=True)]
    ratio = {
        "rounds": plan.rounds,
        "median": round(statistics.median(paired), 3),
        "min": round(min(paired), 3),
        "max": round(max(paired), 3),
        # The inverse ratio of CPU per task: what the throughput ratio tends to on a saturated machine, and far
        # less moved by other work on it than wall-clock rates are.
        "cpu_median": round(statistics.median(cpu), 3),
        "cpu_min": round(min(cpu), 3),
        "cpu_max": round(max(cpu), 3),
    }
    return {n: summarise(rates[n], lats[n], plan) for n in names}, ratio


async def recovery(lease: float = 1.0, tasks: int = 200) -> dict[str, Any]:
    """kill -9 a Podium worker that holds ``tasks`` in flight; seconds until all finish on the survivor."""
    with RedisServer() as server:
        client = aioredis.Redis.from_url(server.url)
        bus = Bus(client)
        worker = [sys.executable, "-m", "bench._peers.podium_worker", "--url", server.url, "--lease", str(lease)]
        doomed = start_piped(
            [*worker, "--replica", "doomed", "--delay-ms", "600000", "--batch", str(tasks)], server.url
        )
        survivor: subprocess.Popen[bytes] | None = None
        try:
            assert doomed.stdout is not None
            doomed.stdout.readline()  # ready
            batch = [Task(id=f"r{i}", kind="execute", input=i, namespace="bench", agent="noop") for i in range(tasks)]
            await bus.dispatch_many(batch)
            await asyncio.sleep(0.3)
            held = await bus.in_flight("bench", "noop")
            survivor = spawn([*worker, "--replica", "survivor"], server.url)
            await asyncio.sleep(0.5)  # the survivor is up and idle
            killed = time.perf_counter()
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            results = await bus.wait_results(batch, 30)
            took = time.perf_counter() - killed
        finally:
            if doomed.poll() is None:
                doomed.kill()
                doomed.wait()
            stop([survivor] if survivor else [])
            await bus.close()
            await client.aclose()
    return {
        "lease_seconds": lease,
        "in_flight_at_kill": held,
        "completed": len(results),
        "seconds_to_all_done": round(took, 3),
    }


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, float]:
    podium = systems.get("podium", {}).get("tasks_per_s")
    out = {}
    for name, row in systems.items():
        if name != "podium" and podium and row.get("tasks_per_s"):
            out[f"podium_vs_{name}_throughput"] = round(podium / row["tasks_per_s"], 2)
    return out


async def run(plan: Plan, only: list[str]) -> dict[str, Any]:
    systems: dict[str, dict[str, Any]] = {}
    report: dict[str, Any] = {"systems": systems}
    paired = tuple(n for n in PAIRED if n in only)
    if len(paired) == 2:
        try:
            found, report["paired"] = await measure_paired(paired, plan)
            systems.update(found)
        except Exception as exc:
            for n in paired:
                systems[n] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"# {paired}: {report.get('paired')}", file=sys.stderr, flush=True)
    for name in only:
        if name in systems:
            continue
        try:
            systems[name] = await measure(name, plan)
        except Exception as exc:  # one broken competitor must not hide the others' numbers
            systems[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"# {name}: {systems[name]}", file=sys.stderr, flush=True)
    report["ratios"] = ratios(systems)
    if "paired" in report:
        report["ratios"]["podium_vs_raw_throughput"] = report["paired"]["median"]
    if "podium" in only:
        report["recovery"] = await recovery()
        if plan is FULL:  # the default lease too: what a user gets without tuning (about lease + reclaim interval)
            report["recovery_default_lease"] = await recovery(lease=DEFAULT_LEASE_SECONDS)
    report["plan"] = plan.__dict__
    report["cpus"] = os.cpu_count()
    return report


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'system':<10} {'tasks/s':>10} {'CPU us/task':>12} {'p50 ms':>8} {'p99 ms':>8}  "
        f"(p50/p99 at {report['plan']['rate']}/s)"
    ]
    for name, row in report["systems"].items():
        if "error" in row:
            lines.append(f"{name:<10} error: {row['error']}")
        else:
            lines.append(
                f"{name:<10} {row['tasks_per_s']:>10.0f} {row['cpu_us_per_task']:>12.1f} {row['p50_ms']:>8.2f} "
                f"{row['p99_ms']:>8.2f}"
            )
    for key, value in report["ratios"].items():
        lines.append(f"{key}: {value}x")
    if "paired" in report:
        p = report["paired"]
        lines.append(
            f"podium/raw per round ({p['rounds']} interleaved rounds): median {p['median']}x, "
            f"range {p['min']}-{p['max']}x"
        )
    for key in ("recovery", "recovery_default_lease"):
        if key in report:
            r = report[key]
            lines.append(
                f"recovery: {r['in_flight_at_kill']} in flight at kill -9, all {r['completed']} done "
                f"{r['seconds_to_all_done']}s later (lease {r['lease_seconds']}s)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer tasks, shorter runs")
    parser.add_argument("--only", default=",".join(DEFAULT), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    report = asyncio.run(run(QUICK if args.quick else FULL, only))
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
