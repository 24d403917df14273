"""Heartbeat rate steps for ``signage bench server``: open-loop load from several processes,
rising until the server's knee, with the CPU time each server process spent on every step.

Each load process runs uvloop and the raw client (``tools.bench._http``) and sends its share
of the step's rate on a schedule fixed in advance; latency counts from when a request was due,
not when it left, so a queue in front of the server shows (no coordinated omission). The
coordinator reads the CPU time of the server processes (and of PostgreSQL and Redis, and of
the load processes themselves) by pid before and after each step, so a step reports the
server cores it used and heartbeats per server core-second, not only a rate.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from tools.bench._http import RawPool
from tools.bench._usage import cpu_seconds

P99_TARGET_MS = 50.0
KEPT = 0.95  # a step holds when it achieved this share of its target rate...
REFINE = (1.25, 1.5, 1.75)  # ...and past the last doubling that held, these finer steps
LOAD_BUSY = 0.9  # a load process above this share of a core may be measuring itself


@dataclass
class Step:
    target_per_s: int
    sent: int
    ok: int
    rejected: int
    errors: int
    achieved_per_s: float
    p50_ms: float
    p99_ms: float
    seconds: float  # from the first heartbeat due to the last answer
    server_cpu_s: float  # CPU time of the server processes over those seconds
    server_cores: float
    per_core_s: float  # heartbeats answered 200 per second of server CPU
    engine_cores: float  # PostgreSQL and Redis (0 for SQLite, which runs in the server)
    load_cores: float  # the load processes, together
    load_busiest: float  # the busiest load process's share of one core

    @property
    def held(self) -> bool:
        return (
            self.achieved_per_s >= KEPT * self.target_per_s
            and self.p99_ms < P99_TARGET_MS
            and not self.errors
        )


async def _one(pool: RawPool, request: bytes, due: float, latencies: list[float]) -> int:
    status = await pool.send(request)
    latencies.append(time.monotonic() - due)
    return status


async def _share(
    pools: list[RawPool], requests: list[bytes], rate: float, seconds: float, began: float
) -> dict[str, Any]:
    """This process's part of a step: ``rate``/s from ``began`` (``time.monotonic``, which
    every process on the machine shares) for ``seconds``, round-robin over ``pools``."""
    cpu = time.process_time()
    latencies: list[float] = []
    tasks = []
    total = int(rate * seconds)
    for i in range(total):
        due = began + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pool = pools[i % len(pools)]
        tasks.append(asyncio.create_task(_one(pool, requests[i % len(requests)], due, latencies)))
    statuses = Counter(await asyncio.gather(*tasks))
    return {
        "statuses": dict(statuses),
        "latencies": latencies,
        "ended": time.monotonic(),
        "cpu_s": time.process_time() - cpu,
    }


async def _serve(connection: Connection, urls: list[str], requests: list[bytes]) -> None:
    pools = [RawPool(url, size=max(8, 256 // len(urls))) for url in urls]
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                order = await loop.run_in_executor(None, connection.recv)
            except EOFError:  # the coordinator is gone
                return
            if order is None:
                return
            rate, seconds, began = order
            connection.send(await _share(pools, requests, rate, seconds, began))
    finally:
        for pool in pools:
            pool.close()


def worker_main(connection: Connection, urls: list[str], requests: list[bytes]) -> None:
    """A load process: runs the steps it is sent (``(rate, seconds, began)``) until ``None``."""
    import uvloop

    from tools.bench._usage import raise_fd_limit

    raise_fd_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(connection, urls, requests))


class Workers:
    """The load processes of a run (spawned; each gets its share of every step)."""

    def __init__(self, count: int, urls: list[str], requests: list[bytes]) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.connections: list[Connection] = []
        self.processes: list[Any] = []
        for n in range(count):
            mine, theirs = context.Pipe()
            # Each process beats for its own devices: one device's heartbeats stay in order.
            process = context.Process(target=worker_main, args=(theirs, urls, requests[n::count]))
            process.start()
            self.connections.append(mine)
            self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def close(self) -> None:
        for connection in self.connections:
            connection.send(None)
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()

    def step(self, rate: int, seconds: float, server: list[int], engines: list[int]) -> Step:
        began = time.monotonic() + 0.3
        for connection in self.connections:
            connection.send((rate / len(self.connections), seconds, began))
        time.sleep(max(0.0, began - time.monotonic()))
        server_cpu, engine_cpu = cpu_seconds(server), cpu_seconds(engines)
        parts = [connection.recv() for connection in self.connections]
        elapsed = max(p["ended"] for p in parts) - began
        server_cpu = cpu_seconds(server) - server_cpu
        engine_cpu = cpu_seconds(engines) - engine_cpu
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        for part in parts:
            statuses.update({int(k): v for k, v in part["statuses"].items()})
            latencies += part["latencies"]
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
        ok = statuses[200]
        return Step(
            target_per_s=rate,
            sent=sum(statuses.values()),
            ok=ok,
            rejected=statuses[429],
            errors=sum(v for k, v in statuses.items() if k not in (200, 429)),
            achieved_per_s=ok / elapsed,
            p50_ms=cuts[49] * 1000,
            p99_ms=cuts[98] * 1000,
            seconds=elapsed,
            server_cpu_s=server_cpu,
            server_cores=server_cpu / elapsed,
            per_core_s=ok / server_cpu if server_cpu > 0 else 0.0,
            engine_cores=engine_cpu / elapsed,
            load_cores=sum(p["cpu_s"] for p in parts) / elapsed,
            load_busiest=max(p["cpu_s"] for p in parts) / elapsed,
        )


def rates(start: int, max_rate: int, run: Any) -> list[Step]:
    """Steps doubling from ``start`` until one does not hold (or ``max_rate``), then finer
    steps above the last that held, until one does not: the knee to 12.5 % of a rate."""
    steps: list[Step] = []
    rate, held = start, None
    while rate <= max_rate:
        step: Step = run(rate)
        steps.append(step)
        if not step.held:
            break
        held, rate = rate, rate * 2
    else:
        return steps  # every rate up to max_rate held: the knee is above it
    if held is not None:
        for factor in REFINE:
            step = run(int(held * factor))
            steps.append(step)
            if not step.held:
                break
    return steps
