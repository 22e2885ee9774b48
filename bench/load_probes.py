"""What `bench/load.py` measures beside the answers, and the one fault it fires per run.

`Sampler` reads, four times a second while the users run: the API process's database pool
counters and CPU time (written by `bench/load_api.py`), Postgres's CPU (the postmaster and
its backends), the machine's, and from `pg_stat_activity` / `pg_locks` what each client
backend is doing (running, idle, waiting on a lock or on I/O). `diagnosis()` turns that into
the figures that tell a pool wait from a slow or blocked query from a busy CPU.

`Fault` fires one of the fault harness's faults (tests/faults/stack.py: the same stop, kill
and freeze code) at a set moment and records when the dependency went away and when it was
back, which is when the recovery clock starts.
"""

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from tests.faults.stack import ChaosStack

# The faults a load run can meet (the worker and work-volume faults need GPU work, which this
# workload never starts; the relay carries upload events, which no load request waits for).
LOAD_FAULTS = ("pg_restart", "pg_terminate", "s3_restart", "s3_stall", "api_kill")

ACTIVITY_SQL = """
select coalesce(state, '?'), coalesce(wait_event_type, ''), coalesce(wait_event, ''), count(*)
  from pg_stat_activity
 where backend_type = 'client backend' and pid <> pg_backend_pid()
 group by 1, 2, 3
"""
BLOCKED_SQL = "select count(*) from pg_locks where not granted"
# What a backend waiting on a lock runs, and what the one holding it runs.
WAITERS_SQL = """
select left(regexp_replace(w.query, '\\s+', ' ', 'g'), 90),
       left(regexp_replace(coalesce(b.query, ''), '\\s+', ' ', 'g'), 90)
  from pg_stat_activity w
  left join pg_stat_activity b on b.pid = (pg_blocking_pids(w.pid))[1]
 where w.wait_event_type = 'Lock' and w.pid <> pg_backend_pid()
"""


@dataclass
class Sampler:
    stats_file: Path
    database_url: str
    postmaster_pid: Callable[[], int | None]  # read again each tick: a restart changes it
    every: float = 0.25
    activity: Counter[str] = field(default_factory=Counter)  # "state wait_type:wait" -> samples
    samples: int = 0
    blocked_max: int = 0
    blocked_samples: int = 0
    lock_waits: Counter[str] = field(default_factory=Counter)  # "waiter <- holder" -> samples
    active_sum: int = 0
    pg_cpu_s: float = 0.0
    pg_cpu_seen: dict[int, tuple[float, float]] = field(default_factory=dict)  # first, last
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    started: float = 0.0
    stopped: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "Sampler":
        self.first = self._api_stats()
        self.started = time.monotonic()
        self._client_cpu = _cpu_s(psutil.Process())
        psutil.cpu_percent()  # the machine's figure is measured from here
        self._pg_tick()
        self._thread = threading.Thread(target=self._run, daemon=True, name="load-sampler")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.stopped = time.monotonic()
        self.machine_cpu = psutil.cpu_percent()
        self._pg_tick()
        self.pg_cpu_s = sum(max(last - first, 0.0) for first, last in self.pg_cpu_seen.values())
        self.client_cpu_s = _cpu_s(psutil.Process()) - self._client_cpu
        self.last = self._api_stats()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(self.every):
            self._pg_tick()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=2)
                self._sample(conn)
            except psycopg.Error:  # Postgres is down (a fault): no sample this tick
                with contextlib.suppress(Exception):
                    if conn is not None:
                        conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _sample(self, conn: psycopg.Connection[Any]) -> None:
        self.samples += 1
        for state, wait_type, wait, n in conn.execute(ACTIVITY_SQL).fetchall():
            key = f"{state} {wait_type}:{wait}" if wait_type else state
            self.activity[key] += n
            if state == "active":
                self.active_sum += n
        row = conn.execute(BLOCKED_SQL).fetchone()
        blocked = int(row[0]) if row else 0
        self.blocked_max = max(self.blocked_max, blocked)
        self.blocked_samples += blocked > 0
        if blocked:
            for waiter, holder in conn.execute(WAITERS_SQL).fetchall():
                self.lock_waits[f"{waiter} <- {holder}"] += 1

    def _api_stats(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return None

    def _pg_tick(self) -> None:
        """Postgres's CPU so far, per postmaster (a restarted server is a new one)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        used = self._pg_cpu(pid)
        first, _ = self.pg_cpu_seen.get(pid, (used, used))
        self.pg_cpu_seen[pid] = (first, used)

    @staticmethod
    def _pg_cpu(pid: int) -> float:
        """User + system seconds of the postmaster and every backend it has now."""
        total = 0.0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
        return total

    def diagnosis(self, requests: int) -> dict[str, Any]:
        """Where the time went, per figure; `requests`: answers the API gave meanwhile."""
        wall = max(self.stopped - self.started, 1e-9)
        out: dict[str, Any] = {"machine_cpu_percent": round(self.machine_cpu, 1)}
        out["machine_cores"] = psutil.cpu_count()
        out["postgres_cpu_percent_of_one_core"] = round(100 * self.pg_cpu_s / wall, 1)
        # the bench's own process (the simulated users): a saturated client adds its own wait
        out["client_cpu_percent_of_one_core"] = round(100 * self.client_cpu_s / wall, 1)
        first, last = self.first, self.last
        if last and (not first or first.get("pid") != last.get("pid")):
            # the API was restarted (api_kill): its counters are the new process's alone
            first = {"cpu_s": 0.0, "run_delay_s": 0.0, "requests": 0, "in_flight": 0}
            out["api_restarted"] = True
        if first and last and first.get("cpu_s") is not None and last.get("cpu_s") is not None:
            api_cpu = last["cpu_s"] - first["cpu_s"]
            out["api_cpu_percent_of_one_core"] = round(100 * api_cpu / wall, 1)
            out["api_cpu_ms_per_request"] = round(1000 * api_cpu / max(requests, 1), 2)
            out["pool"] = _pool_delta(first.get("pools") or [], last.get("pools") or [])
            out |= _server_side(first, last)
            delay = last.get("run_delay_s", 0) - first.get("run_delay_s", 0)
            # time the API's threads were ready to run but had no core (the machine's load)
            out["api_waiting_for_a_core_ms_per_request"] = round(1000 * delay / max(requests, 1), 2)
        if self.samples:
            total = sum(self.activity.values())
            out["backends_active_mean"] = round(self.active_sum / self.samples, 2)
            out["backend_states_percent"] = {
                k: round(100 * n / total, 1) for k, n in self.activity.most_common(8)
            }
            out["samples"] = self.samples
            out["lock_waits_max"] = self.blocked_max
            out["samples_with_lock_waits_percent"] = round(
                100 * self.blocked_samples / self.samples, 1
            )
            out["lock_waits"] = dict(self.lock_waits.most_common(5))
        return out


def _server_side(first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """The API's own p50/p99 (from `bench/load_api.py`'s buckets) and the mean number of
    requests already inside it when one arrived."""
    out: dict[str, Any] = {}
    for key, name in (("buckets", "api_side"), ("loop_lag", "api_loop_lag")):
        b = last.get(key)
        a = first.get(key) or ([0] * len(b) if b else None)
        if a and b:
            counts = [y - x for x, y in zip(a, b, strict=True)]
            if sum(counts):
                out[f"{name}_p50_ms"] = _bucket_percentile(counts, 0.5)
                out[f"{name}_p99_ms"] = _bucket_percentile(counts, 0.99)
    if "requests" in first and "requests" in last:
        arrivals = last["requests"] - first["requests"]
        inside = last["in_flight"] - first["in_flight"]
        out["api_requests_in_flight_mean"] = round(inside / max(arrivals, 1), 1)
    return out


def _bucket_percentile(counts: list[int], q: float) -> float:
    """The upper edge (ms) of the log bucket (edge k: 1.1**k ms) holding the q-th answer."""
    total, seen = sum(counts), 0
    for k, n in enumerate(counts):
        seen += n
        if seen >= q * total:
            return round(1.1 ** min(k, len(counts) - 2), 1)
    return float("nan")


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _pool_delta(first: list[dict[str, int]], last: list[dict[str, int]]) -> dict[str, Any]:
    """The service pool's (the first one the API opened) counters over the run."""
    if not last:
        return {}
    a, b = (first[0] if first else {}), last[0]

    def d(key: str) -> int:
        return int(b.get(key, 0)) - int(a.get(key, 0))

    calls, queued, wait_ms = d("requests_num"), d("requests_queued"), d("requests_wait_ms")
    return {
        "max_size": b.get("pool_max"),
        "db_calls": calls,
        "calls_that_waited": queued,
        "waited_percent": round(100 * queued / max(calls, 1), 1),
        "wait_ms_total": wait_ms,
        "wait_ms_mean_of_waiters": round(wait_ms / max(queued, 1), 1),
        "errors": d("requests_errors"),
        "connections_lost": d("connections_lost"),
    }


@dataclass
class Fault:
    """One fault of `LOAD_FAULTS` at `at` seconds into the run, for `down` seconds."""

    kind: str
    at: float
    down: float
    restart_api: Callable[[], None]
    kill_api: Callable[[], None]
    start: float | None = None  # monotonic: the dependency went away
    end: float | None = None  # monotonic: it was back (the recovery clock starts)
    error: str = ""

    def fire(self, stack: ChaosStack, t0: float) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(stack, t0), daemon=True)
        thread.start()
        return thread

    def _run(self, stack: ChaosStack, t0: float) -> None:
        time.sleep(max(t0 + self.at - time.monotonic(), 0))
        try:
            self.start = time.monotonic()
            if self.kind == "pg_restart":
                stack.stop_postgres()
                time.sleep(self.down)
                stack.start_postgres()
            elif self.kind == "pg_terminate":
                stack.terminate_backends()
            elif self.kind == "s3_restart":
                stack.stop_storage()
                time.sleep(self.down)
                stack.restart_storage()
            elif self.kind == "s3_stall":
                stack.freeze_storage()
                time.sleep(self.down)
                stack.thaw_storage()
            elif self.kind == "api_kill":
                self.kill_api()
                time.sleep(min(self.down, 2))
                self.restart_api()  # returns once /health answers
            else:
                raise ValueError(f"unknown fault {self.kind}")
        except Exception as exc:
            self.error = repr(exc)
        finally:
            self.end = time.monotonic()
