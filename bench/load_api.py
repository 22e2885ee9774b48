"""The API as `bench/load.py` serves it: uvicorn, one process, plus a thread that writes the
process's database pool counters and CPU time to a JSON file twice a second, so the bench can
tell time spent waiting for a pooled connection from time spent in Python or in Postgres.

    python -m bench.load_api <port> <stats.json>   (with the stack's VC_* env)
"""

import asyncio
import bisect
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import uvicorn

from pipeline import db

POOLS: list[db.PostgresDatabase] = []
# Server-side request time, in log buckets (edge k: 1.1**k ms), counted since the start: the
# bench subtracts two readings, so a run's figures are its own.
EDGES_MS = [1.1**k for k in range(120)]  # up to ~90 s


class Timing:
    """ASGI middleware: how long the API itself took per request (arrival to last byte),
    against which the client's figure shows what the client and the network added, and how
    many requests were in the API at each arrival."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.buckets = [0] * (len(EDGES_MS) + 1)
        self.in_flight = 0
        self.in_flight_sum = 0
        self.requests = 0
        self.lag = [0] * (len(EDGES_MS) + 1)  # the event loop's lateness waking a 10 ms sleep
        self.watcher: asyncio.Task[None] | None = None

    async def watch_loop(self) -> None:
        """Every request is read, parsed and answered on this one loop (the handlers run in
        threads): a late wake-up here is time every arriving request waits before the app."""
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            late_ms = (time.perf_counter() - before - 0.01) * 1000
            self.lag[bisect.bisect_left(EDGES_MS, max(late_ms, 0))] += 1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self.watch_loop())
        start = time.perf_counter()
        self.requests += 1
        self.in_flight_sum += self.in_flight
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            ms = (time.perf_counter() - start) * 1000
            self.buckets[bisect.bisect_left(EDGES_MS, ms)] += 1


TIMING: list[Timing] = []


def timed_app() -> Timing:
    from endpoints.app import create_app

    timing = Timing(create_app())
    TIMING.append(timing)
    return timing


def _track_pools() -> None:
    """Every `PostgresDatabase` the app opens (the service's and the worker login's)."""
    opened = db.PostgresDatabase.__init__

    def init(self: db.PostgresDatabase, *args: Any, **kwargs: Any) -> None:
        opened(self, *args, **kwargs)
        POOLS.append(self)

    db.PostgresDatabase.__init__ = init  # type: ignore[method-assign]


def run_delay_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but not running (waiting for a core):
    the second field of each thread's /proc schedstat, 0 where the kernel does not keep it."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _write_stats(path: Path) -> None:
    proc = psutil.Process()
    while True:
        times = proc.cpu_times()
        stats = {
            "t": time.time(),
            "pid": proc.pid,  # a restarted API's counters start again from 0
            "cpu_s": times.user + times.system,
            "run_delay_s": run_delay_s(proc.pid),
            "threads": proc.num_threads(),
            "pools": [pool.stats() for pool in list(POOLS)],
        }
        if TIMING:
            t = TIMING[0]
            stats |= {"buckets": t.buckets, "requests": t.requests, "in_flight": t.in_flight_sum}
            stats |= {"loop_lag": t.lag}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, path)
        time.sleep(0.5)


if __name__ == "__main__":
    _track_pools()
    threading.Thread(target=_write_stats, args=(Path(sys.argv[2]),), daemon=True).start()
    uvicorn.run(
        timed_app(),  # the object, not its name: a name would import this module a second time
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
    )
