"""One fault run: a `ChaosStack`, the users of `workload`, faults fired at seeded moments by a
thread of their own, the scheduled tasks ticking, then the invariants.

A run is reproducible from its seed as far as a shared machine allows: the seed picks the
order of the faults, the wait before each, how long each lasts and the phase a worker is
killed in; when a fault fires depends on how fast the work goes, so two runs of a seed hit the
same kinds of moments, not the same instants. Used by tests/faults/test_chaos.py (short runs
in CI) and bench/chaos.py (longer ones).
"""

import contextlib
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import psycopg

from pipeline import cron
from pipeline.services import Services, build_services
from tests.faults.invariants import Findings, check_all
from tests.faults.stack import HEARTBEAT_TIMEOUT_SECONDS, ChaosStack, wait_for
from tests.faults.workload import Tally, run_users

log = logging.getLogger(__name__)

FAULT_KINDS = (
    "pg_restart",
    "pg_terminate",
    "s3_restart",
    "s3_stall",
    "relay_down",
    "api_kill",
    "worker_kill",
    "worker_freeze",
    "work_volume_full",
)
# How long after each fault ends a 503 is still right: a dependency that was down gets this
# long to be back in use (the goal: under 5 s); the others never take a dependency
# away from the API, so any 503 around them is wrong.
RECOVERY_SECONDS = {"pg_restart": 5.0, "s3_restart": 5.0, "s3_stall": 5.0}
TRAINING_PHASES = ("download", "features", "train", "evaluate", "upload")
CONVERSION_PHASES = ("load_model", "convert", "upload")
# Phases a job stays in long enough on a CPU to be caught (the suite's short runs aim there).
LINGERING_PHASES = ("features", "train", "convert")


@dataclass
class FaultRecord:
    kind: str
    at: float  # seconds into the run
    seconds: float = 0.0
    unavailable: int = 0  # 503 answers while it lasted and its recovery time after
    fired: bool = False
    detail: str = ""
    jobs: list[str] = field(default_factory=list)  # jobs it hit (worker faults)


@dataclass
class RunReport:
    seed: int
    users: int
    seconds: float = 0.0
    faults: list[FaultRecord] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)  # 500s, 503s without Retry-After
    stray_unavailable: list[str] = field(default_factory=list)  # 503s outside a fault's window
    transport_errors: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> status -> count
    error_codes: dict[str, int] = field(default_factory=dict)
    broken: dict[str, list[str]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    freeze_overwrites: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.violations or self.stray_unavailable or self.broken or self.freeze_overwrites
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


class Crons:
    """Modal's scheduled functions, every few seconds: reaper, reconciler; a failed tick
    (the database is down) is logged and tried at the next."""

    def __init__(self, services: Services, every: float = 2.0) -> None:
        self.services, self.every = services, every
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="chaos-crons")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    def tick(self) -> None:
        for task in (cron.reap, cron.reconcile):
            try:
                task(self.services)
            except Exception as exc:  # the database or the store is down: next tick
                log.info("cron %s: %s", task.__name__, exc)

    def start(self) -> "Crons":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)


class Injector:
    """Fires `kinds` one after another at seeded moments while the users work."""

    def __init__(
        self, stack: ChaosStack, kinds: list[str], rng: random.Random, t0: float, long: bool
    ) -> None:
        self.stack, self.kinds, self.rng, self.t0, self.long = stack, kinds, rng, t0, long
        self.records: list[FaultRecord] = []
        self.frozen: list[tuple[str, str, str | None]] = []  # (job, status, code) the reaper set
        self.done = threading.Event()
        self.users_done = threading.Event()  # then a fault stops waiting for work to hit
        self.thread = threading.Thread(target=self._run, daemon=True, name="chaos-faults")

    def _run(self) -> None:
        try:
            for kind in self.kinds:
                time.sleep(self.rng.uniform(3, 12) if self.long else self.rng.uniform(2, 6))
                record = FaultRecord(kind, round(time.monotonic() - self.t0, 1))
                start = time.monotonic()
                try:
                    getattr(self, kind)(record)
                except Exception as exc:
                    record.detail += f" (harness error: {exc!r})"
                    log.exception("fault %s", kind)
                record.seconds = round(time.monotonic() - start, 1)
                self.records.append(record)
                log.warning("fault %s at %ss: %s", kind, record.at, record.detail)
        finally:
            self.done.set()

    def _outage(self) -> float:
        return self.rng.uniform(10, 60) if self.long else self.rng.uniform(8, 15)

    # The faults ------------------------------------------------------------------------

    def _aim(self, r: FaultRecord, phases: tuple[str, ...], timeout: float = 60) -> None:
        """Waits (a while) for a job in one of `phases`, so the outage hits work in flight."""
        hit = self._job_in_phase(phases, timeout if self.long else timeout / 2)
        if hit is not None:
            r.jobs = [hit[1]]
            r.detail = f"during {hit[0]} {hit[1]} in {'/'.join(phases)}; "

    def pg_restart(self, r: FaultRecord) -> None:
        self._aim(r, ("features", "train", "convert"))
        down = self._outage()
        self.stack.stop_postgres()
        r.fired = True
        time.sleep(down)
        self.stack.start_postgres()
        r.detail += f"Postgres down {down:.0f}s"

    def pg_terminate(self, r: FaultRecord) -> None:
        self._aim(r, ("features", "train", "convert"), timeout=30)
        killed = self.stack.terminate_backends()
        r.fired = True
        r.detail += f"{killed} sessions terminated"

    def s3_restart(self, r: FaultRecord) -> None:
        self._aim(r, ("evaluate", "upload", "convert"))
        down = self._outage()
        self.stack.stop_storage()
        r.fired = True
        time.sleep(down)
        self.stack.restart_storage()
        r.detail += f"SeaweedFS down {down:.0f}s"

    def s3_stall(self, r: FaultRecord) -> None:
        self._aim(r, ("download", "load_model", "upload"))
        down = self._outage()
        self.stack.freeze_storage()
        r.fired = True
        time.sleep(down)
        self.stack.thaw_storage()
        r.detail += f"SeaweedFS stalled {down:.0f}s"

    def relay_down(self, r: FaultRecord) -> None:
        down = self._outage() * 2
        self.stack.stop_relay()
        r.fired = True
        time.sleep(down)
        self.stack.start_relay()
        r.detail = f"relay down {down:.0f}s"

    def api_kill(self, r: FaultRecord) -> None:
        self.stack.kill_api()
        r.fired = True
        time.sleep(self.rng.uniform(1, 4))
        self.stack.restart_api()
        r.detail = "API SIGKILLed and restarted"

    def _job_in_phase(self, phases: tuple[str, ...], timeout: float) -> tuple[str, str] | None:
        """A running job (kind, id) whose progress reached one of `phases`."""
        found: list[tuple[str, str]] = []

        def look() -> bool:
            if self.users_done.is_set():
                return True  # nothing more will start
            with self.stack.sql() as conn:
                for kind, table in (("train", "training_jobs"), ("convert", "conversion_jobs")):
                    rows = conn.execute(
                        f"select id from public.{table} where status = 'running'"
                        " and progress ->> 'phase' = any(%s)",
                        (list(phases),),
                    ).fetchall()
                    found.extend((kind, str(r[0])) for r in rows)
            return bool(found)

        return found[0] if wait_for(look, timeout, every=0.3) and found else None

    def _phase_of(self, kind: str, job_id: str) -> str:
        table = "training_jobs" if kind == "train" else "conversion_jobs"
        with self.stack.sql() as conn:
            row = conn.execute(
                f"select progress ->> 'phase' from public.{table} where id = %s", (job_id,)
            ).fetchone()
        return str(row[0]) if row else "?"

    def _worker_of(self, kind: str, job_id: str) -> psutil.Process | None:
        procs = [p for p in self.stack.workers(kind) if job_id in p.cmdline()]
        return procs[0] if procs else None

    def worker_kill(self, r: FaultRecord) -> None:
        # a long run aims at one seeded phase of all; a short one at whichever lingering phase
        # a job reaches first (a CPU passes through the others in a blink)
        every = TRAINING_PHASES + CONVERSION_PHASES
        phases = (self.rng.choice(every),) if self.long else LINGERING_PHASES
        hit = self._job_in_phase(phases, timeout=300)
        if hit is None:
            r.detail = f"no job reached {'/'.join(phases)} in time"
            return
        phase = self._phase_of(*hit)
        proc = self._worker_of(*hit)
        if proc is None:
            r.detail = f"{hit[0]} {hit[1]} in {phase}: worker already gone"
            return
        proc.send_signal(signal.SIGKILL)
        r.fired, r.jobs = True, [hit[1]]
        r.detail = f"SIGKILL {hit[0]} worker in {phase}"

    def worker_freeze(self, r: FaultRecord) -> None:
        hit = self._job_in_phase(LINGERING_PHASES, timeout=300)
        proc = self._worker_of(*hit) if hit else None
        if hit is None or proc is None:
            r.detail = "no worker to freeze"
            return
        phase = self._phase_of(*hit)
        kind, job_id = hit
        table = "training_jobs" if kind == "train" else "conversion_jobs"
        proc.send_signal(signal.SIGSTOP)
        r.fired, r.jobs = True, [job_id]

        def reaped() -> bool:
            with self.stack.sql() as conn:
                row = conn.execute(
                    f"select status from public.{table} where id = %s", (job_id,)
                ).fetchone()
            return row is not None and row[0] != "running"

        gone = wait_for(reaped, HEARTBEAT_TIMEOUT_SECONDS + 60)
        with self.stack.sql() as conn:
            status, code = conn.execute(
                f"select status, error_code from public.{table} where id = %s", (job_id,)
            ).fetchone()
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGCONT)
        self.frozen.append((job_id, status, code))
        r.detail = f"SIGSTOP {kind} worker in {phase}; row became {status} {code}" + (
            "" if gone else " (never reaped)"
        )

    def work_volume_full(self, r: FaultRecord) -> None:
        if not self.stack.work_volume:
            r.detail = "skipped: no tmpfs could be mounted here"
            return
        hit = self._job_in_phase(("download", "prepare"), timeout=120)
        self.stack.fill_work_volume()
        r.fired = True
        r.jobs = [hit[1]] if hit else []
        time.sleep(self.rng.uniform(8, 15))
        self.stack.drain_work_volume()
        r.detail = "work volume full" + (f" while {hit[1]} prepared" if hit else "")


def run(
    root: Path,
    seed: int,
    users: int = 2,
    kinds: list[str] | None = None,
    long: bool = False,
    job_timeout: float = 600,
    on_stack: Callable[[ChaosStack], None] | None = None,
) -> RunReport:
    """Starts a stack in `root`, runs the users under the faults, settles, checks."""
    rng = random.Random(seed)
    kinds = list(FAULT_KINDS if kinds is None else kinds)
    rng.shuffle(kinds)
    report = RunReport(seed=seed, users=users)
    stack = ChaosStack.create(root)
    services: Services | None = None
    try:
        stack.start_all()
        if on_stack:
            on_stack(stack)
        services = build_services(stack.settings(dispatch="thread"))
        crons = Crons(services).start()
        emails = [f"chaos{seed}-{i}@test.local" for i in range(users)]
        tokens = {str(stack.ensure_user(e)): stack.dev_token(e) for e in emails}
        tally = Tally()
        t0 = time.monotonic()
        injector = Injector(stack, kinds, rng, t0, long)
        injector.thread.start()
        runs = run_users(stack.api_url, list(tokens.values()), seed, tally, job_timeout)
        injector.users_done.set()
        injector.done.wait()
        report.seconds = round(time.monotonic() - t0, 1)
        _settle(stack, crons)
        crons.stop()
        report.faults = injector.records
        report.answers = {f"{r} {s}": n for (r, s), n in sorted(tally.answers.items())}
        report.violations = tally.violations
        report.stray_unavailable = _attribute_unavailable(tally, injector.records, t0)
        report.transport_errors = dict(tally.transport_errors)
        report.gave_up = [f"{u.name}: {g}" for u in runs for g in u.gave_up]
        live = {j for p in stack.workers() for j in p.cmdline()[3:]}
        grace = services.settings.orphan_grace_seconds
        findings: Findings = check_all(
            stack.database_url,
            services.storage,
            services.db.call,
            stack.api_url,
            tokens,
            live,
            grace,
        )
        report.broken, report.orphans = findings.broken, findings.orphans
        report.freeze_overwrites = _freeze_overwrites(stack, injector.frozen)
        report.jobs, report.error_codes = _job_summary(stack)
    finally:
        if services is not None:
            services.close()
        stack.stop()
    return report


def _attribute_unavailable(tally: Tally, records: list[FaultRecord], t0: float) -> list[str]:
    """Counts each 503 against the fault whose window holds it; returns the others."""
    stray = []
    for when, route in tally.unavailable:
        at = when - t0
        for r in records:
            if r.fired and r.at <= at <= r.at + r.seconds + RECOVERY_SECONDS.get(r.kind, -1e9):
                r.unavailable += 1
                break
        else:
            stray.append(f"{route} at {at:.1f}s")
    return stray


def _settle(stack: ChaosStack, crons: Crons) -> None:
    """Lets every worker end (or the reaper end its job) before the checks."""

    def quiet() -> bool:
        crons.tick()
        with stack.sql() as conn:
            live = conn.execute(
                "select count(*) from (select status from public.training_jobs union all"
                " select status from public.conversion_jobs union all"
                " select status from public.separation_jobs) j"
                " where status in ('queued', 'running')"
            ).fetchone()[0]
        return live == 0 and not stack.workers()

    wait_for(quiet, HEARTBEAT_TIMEOUT_SECONDS * 6, every=1)


def _freeze_overwrites(stack: ChaosStack, frozen: list[tuple[str, str, str | None]]) -> list[str]:
    """A frozen worker, resumed, must leave the state the reaper set."""
    problems = []
    with stack.sql() as conn:
        for job_id, status, code in frozen:
            if status == "running":
                continue  # not reaped: nothing to overwrite
            for table in ("training_jobs", "conversion_jobs"):
                row = conn.execute(
                    f"select status, error_code from public.{table} where id = %s", (job_id,)
                ).fetchone()
                if row and (row[0], row[1]) != (status, code):
                    problems.append(f"{job_id}: reaper set {status} {code}, now {row[0]} {row[1]}")
    return problems


def _job_summary(stack: ChaosStack) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    jobs: dict[str, dict[str, int]] = {}
    codes: dict[str, int] = {}
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for kind in ("training", "conversion", "separation"):
            for status, code, n in conn.execute(
                f"select status, coalesce(error_code, ''), count(*) from public.{kind}_jobs"
                " group by 1, 2"
            ).fetchall():
                jobs.setdefault(kind, {})
                jobs[kind][status] = jobs[kind].get(status, 0) + n
                if code:
                    codes[f"{kind} {code}"] = codes.get(f"{kind} {code}", 0) + n
    return jobs, codes
