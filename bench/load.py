"""A mixed workload of many simulated users against a throwaway local stack, then a check that
the database holds exactly what the API said it did.

Each user signs in (an access token from the local issuer, verified by the API through its
JWKS), creates a voice profile and then, until the time is up, picks at random among upload
requests, status polls (`GET /profiles`, `GET /profiles/{id}`, `GET /quota`, the dataset
listing) and job starts, back to back with no think time. Every job start must be refused:
half the users have an empty dataset, so a training is refused with `DATASET_TOO_SHORT` and a
conversion with `NO_MODEL`; the other half own a profile seeded as a finished training leaves
it (ready files, a ready model) with both quotas set to 0 in `quota_overrides`, so their
starts get as far as the quota reservation and are refused with `QUOTA_EXCEEDED`, which must
leave no job row and no counter behind. The per-user rate limits (`VC_RATE_*`) are raised so
the figures measure the service; `--default-rate-limits` keeps the defaults and the 429
`RATE_LIMITED` answers are counted either way.

Prints requests served, responses by status and error code, and p50/p99 per route. Then,
per user, compares the database (and the API's own summary) with the requests that
succeeded: pending dataset rows = accepted upload requests, ready rows and seconds = the
seeded ones, no training or conversion row beyond the seeded one, quota counters and GPU
spend untouched by the refused starts. Exits non-zero on any 5xx, transport error,
unexpected status or disagreement.

    .venv/bin/python -m bench.load --users 16 --seconds 30
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import psutil
import psycopg

from bench.load_probes import LOAD_FAULTS, Fault, Sampler
from pipeline import keys
from pipeline.local.processes import stop_process
from pipeline.local.seaweed import find_free_base, free_port
from pipeline.local.stack import REPO_ROOT, LocalStack, StackConfig, wait_healthy
from tests.faults.stack import ChaosStack

PROFILES = "POST /profiles"
UPLOADS = "POST /profiles/{id}/dataset/uploads"
TRAININGS = "POST /profiles/{id}/trainings"
CONVERSIONS = "POST /profiles/{id}/conversions"
RATE_LIMITED_ROUTES = {UPLOADS, TRAININGS, CONVERSIONS}
# High enough that no simulated user ever waits for a token.
RAISED_RATE_LIMITS = {
    f"VC_RATE_{action}_{kind}": "1000000"
    for action in ("UPLOAD", "JOB_START", "CANCEL", "PUBLIC")
    for kind in ("BURST", "PER_MINUTE")
}
SEEDED_FILES = 4
# A 5xx or a cut-off request this long after the dependency is back still counts as the
# fault's (the goal for recovery); later ones fail the run.
RECOVERY_GOAL_SECONDS = 5.0
MACHINE_NOTE = (
    "client, API, Postgres and SeaweedFS share this machine's cores (and, on the project's "
    "shared 2-core box, other people's work): compare runs with each other, not with production"
)


@dataclass(frozen=True)
class Action:
    """One kind of request a simulated user makes; `weight` is how often it is picked."""

    route: str
    method: str
    path: str  # `{profile}` is the user's profile id
    weight: int
    body: dict[str, Any] | None = None


UPLOAD_BODY = {"filename": "take.wav", "content_type": "audio/wav", "size_bytes": 5_000_000}
CONVERSION_BODY = {"filename": "song.wav", "content_type": "audio/wav", "size_bytes": 2_000_000}
ACTIONS = [
    Action(UPLOADS, "POST", "/profiles/{profile}/dataset/uploads", 3, UPLOAD_BODY),
    Action("GET /profiles", "GET", "/profiles", 2),
    Action("GET /profiles/{id}", "GET", "/profiles/{profile}", 2),
    Action("GET /quota", "GET", "/quota", 2),
    Action("GET /profiles/{id}/dataset/files", "GET", "/profiles/{profile}/dataset/files", 2),
    Action(TRAININGS, "POST", "/profiles/{profile}/trainings", 1),
    Action(CONVERSIONS, "POST", "/profiles/{profile}/conversions", 1, CONVERSION_BODY),
]


@dataclass
class SimUser:
    email: str
    user_id: UUID
    token: str
    seeded: bool  # a trained model and quotas of 0, or an empty dataset
    profile_id: UUID | None = None
    succeeded: Counter[str] = field(default_factory=Counter)  # 2xx answers per route
    # requests whose outcome the client never learnt (cut off, or 5xx): they may have committed
    unknown: Counter[str] = field(default_factory=Counter)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tally:
    """Every answer: latency per route, and (route, status, error code) counts."""

    latencies: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    answers: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    # (sent, answered, route, status or 0 for no answer), monotonic seconds: the fault windows
    failures: list[tuple[float, float, str, int]] = field(default_factory=list)
    unavailable_without_retry_after: int = 0
    loop_lag: list[float] = field(default_factory=list)  # the client's event loop, seconds
    # each answer's time split where httpcore's trace marks it: in the client before the
    # request is written, from written to the response headers back (the network and the
    # API), and in the client after that (body read, handed to the user's coroutine)
    legs: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def expected(route: str, seeded: bool) -> set[tuple[int, str]]:
    """The answers a route may give this kind of user; anything else fails the run."""
    answers = {
        PROFILES: {(201, "")},
        UPLOADS: {(201, ""), (409, "TOO_MANY_FILES")},
        TRAININGS: {(429, "QUOTA_EXCEEDED")} if seeded else {(409, "DATASET_TOO_SHORT")},
        CONVERSIONS: {(429, "QUOTA_EXCEEDED")} if seeded else {(409, "NO_MODEL")},
    }.get(route, {(200, "")})
    return answers | ({(429, "RATE_LIMITED")} if route in RATE_LIMITED_ROUTES else set())


async def send(
    client: httpx.AsyncClient,
    user: SimUser,
    tally: Tally,
    route: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> httpx.Response | None:
    start = time.perf_counter()
    sent = time.monotonic()
    marks: dict[str, float] = {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name.endswith(("send_request_headers.started", "receive_response_headers.complete")):
            marks.setdefault(name.split(".", 1)[1], time.perf_counter())

    try:
        response = await client.request(
            method, path, json=body, headers=user.headers, extensions={"trace": trace}
        )
    except httpx.HTTPError as exc:
        tally.transport_errors[f"{route}: {type(exc).__name__}"] += 1
        tally.failures.append((sent, time.monotonic(), route, 0))
        user.unknown[route] += 1
        return None
    done = time.perf_counter()
    tally.latencies[route].append(done - start)
    wrote = marks.get("send_request_headers.started")
    headers = marks.get("receive_response_headers.complete")
    if wrote is not None and headers is not None:
        tally.legs["client_before_writing"].append(wrote - start)
        tally.legs["written_to_headers_back"].append(headers - wrote)
        tally.legs["client_after_headers"].append(done - headers)
    if response.status_code >= 500:
        tally.failures.append((sent, time.monotonic(), route, response.status_code))
        user.unknown[route] += 1
        if response.status_code == 503 and not response.headers.get("Retry-After"):
            tally.unavailable_without_retry_after += 1
    code = ""
    if response.status_code >= 400:
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "(not the error body)"
    answer = (route, response.status_code, code)
    tally.answers[answer] += 1
    # a 503 (dependency down) is judged by when it came (`fault_figures`), not here
    if response.status_code != 503 and (response.status_code, code) not in expected(
        route, user.seeded
    ):
        tally.unexpected[answer] += 1
    if response.is_success:
        user.succeeded[route] += 1
    return response


async def create_profiles(client: httpx.AsyncClient, users: list[SimUser], tally: Tally) -> None:
    """All at once; a refused creation is tallied (it fails the run) and tried again."""

    async def create(user: SimUser) -> None:
        body = {"name": f"load {user.email}"}
        for _ in range(3):
            response = await send(client, user, tally, PROFILES, "POST", "/profiles", body)
            if response is not None and response.status_code == 201:
                user.profile_id = UUID(response.json()["id"])
                return
            answer = "no answer" if response is None else f"{response.status_code} {response.text}"
            print(f"profile for {user.email} refused: {answer}")
            await asyncio.sleep(1)
        raise RuntimeError(f"could not create a profile for {user.email}")

    await asyncio.gather(*(create(user) for user in users))


async def act(
    client: httpx.AsyncClient, user: SimUser, tally: Tally, rng: random.Random, deadline: float
) -> None:
    weights = [action.weight for action in ACTIONS]
    while time.perf_counter() < deadline:
        action = rng.choices(ACTIONS, weights)[0]
        path = action.path.format(profile=user.profile_id)
        got = await send(client, user, tally, action.route, action.method, path, action.body)
        if got is None or got.status_code >= 500:
            await asyncio.sleep(0.2)  # as a client backs off: no busy loop against a dead API


async def drive(api: str, users: list[SimUser], seconds: float, seed: int, tally: Tally) -> float:
    """Runs every user until the deadline; returns the wall seconds the mixed phase took.

    Each user has a client (one connection) of its own, as each person's browser does: with
    one client shared by 64 users, requests waited inside httpx's connection pool before
    being written (measured: p50 0.33 s, p99 2.7 s of a 2.9 s p99), so the figures were the
    load generator's, not the service's."""
    timeout = httpx.Timeout(60, connect=5)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=api, limits=limits, timeout=timeout)
            )
            for _ in users
        ]
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            watch_loop(tally, deadline),
            *(
                act(clients[k], u, tally, random.Random(seed + k), deadline)
                for k, u in enumerate(users)
            ),
        )
        return time.perf_counter() - start


async def watch_loop(tally: Tally, deadline: float, every: float = 0.01) -> None:
    """How late the client's own event loop wakes a 10 ms sleep: time every answer also
    waited in the load generator (a busy client, or a machine without a free core), which
    the client's latencies include and the API's do not."""
    while time.perf_counter() < deadline:
        before = time.perf_counter()
        await asyncio.sleep(every)
        tally.loop_lag.append(time.perf_counter() - before - every)


def seed_trained_profile(conn: psycopg.Connection[Any], user: SimUser, file_seconds: float) -> None:
    """What a probed dataset and a finished training leave behind, plus quotas of 0 as an
    operator sets them: every start of this user then reaches the quota and is refused."""
    assert user.profile_id is not None
    uid, pid = user.user_id, user.profile_id
    with conn.transaction():
        for i in range(SEEDED_FILES):
            file_id = uuid4()
            key = keys.dataset_key(uid, pid, file_id, f"seed-{i}.wav")
            conn.execute(
                "insert into public.dataset_files (id, profile_id, user_id, object_key, filename,"
                " content_type, status, size_bytes, duration_sec, sample_rate, channels, format,"
                " probed_at) values (%s, %s, %s, %s, %s, 'audio/wav', 'ready', %s, %s, 44100, 1,"
                " 'wav', now())",
                (file_id, pid, uid, key, f"seed-{i}.wav", int(file_seconds * 88200), file_seconds),
            )
        # Trained last month, so this month's counter starts empty.
        job = conn.execute(
            "insert into public.training_jobs (user_id, profile_id, status, progress,"
            " quota_period_start, quota_state, started_at, finished_at) values (%s, %s,"
            " 'succeeded', '{\"phase\": \"succeeded\"}', date_trunc('month', now() -"
            " interval '1 month')::date, 'charged', now(), now()) returning id",
            (uid, pid),
        ).fetchone()
        assert job is not None
        model_id = uuid4()
        conn.execute(
            "insert into public.model_versions (id, user_id, profile_id, training_job_id,"
            " model_key, config_key, size_bytes) values (%s, %s, %s, %s, %s, %s, 1000)",
            (
                model_id,
                uid,
                pid,
                job[0],
                keys.model_key(uid, pid, model_id),
                keys.model_config_key(uid, pid, model_id),
            ),
        )
        conn.execute(
            "update public.voice_profiles set active_model_version_id = %s, status = 'ready'"
            " where id = %s",
            (model_id, pid),
        )
        conn.execute(
            "insert into public.quota_overrides (user_id, trainings_per_month,"
            " conversions_per_day, note) values (%s, 0, 0, 'load bench')",
            (uid,),
        )


CONSISTENCY_SQL = """
select u.id,
  (select count(*) from public.voice_profiles p where p.user_id = u.id and p.deleted_at is null),
  (select count(*) from public.dataset_files f where f.user_id = u.id and f.status = 'pending'),
  (select count(*) from public.dataset_files f where f.user_id = u.id and f.status = 'ready'),
  (select coalesce(sum(f.duration_sec), 0) from public.dataset_files f
    where f.user_id = u.id and f.status = 'ready'),
  (select count(*) from public.training_jobs t where t.user_id = u.id),
  (select count(*) from public.conversion_jobs c where c.user_id = u.id),
  (select coalesce(sum(c.used), 0) from public.usage_counters c where c.user_id = u.id),
  (select coalesce(sum(g.seconds), 0) from public.gpu_spend g where g.user_id = u.id)
from auth.users u where u.id = any(%s)
"""
COLUMNS = [
    "profiles",
    "pending files",
    "ready files",
    "ready seconds",
    "training rows",
    "conversion rows",
    "quota used",
    "GPU seconds",
]


def expected_rows(user: SimUser, file_seconds: float) -> list[float]:
    """What the database must hold for this user, from the requests that succeeded."""
    ok = user.succeeded
    seeded = int(user.seeded)
    return [
        ok[PROFILES],
        ok[UPLOADS],
        SEEDED_FILES * seeded,
        SEEDED_FILES * file_seconds * seeded,
        seeded + ok[TRAININGS],
        ok[CONVERSIONS],
        ok[TRAININGS] + ok[CONVERSIONS],
        0,
    ]


def _agrees(name: str, got: float, want: float, user: SimUser) -> bool:
    """Equal, except that an upload whose answer was lost (cut off by a fault, or a 5xx) may
    or may not have committed its pending row."""
    slack = user.unknown[UPLOADS] if name == "pending files" else 0
    return want - 1e-6 <= got <= want + slack + 1e-6


def check_database(database_url: str, users: list[SimUser], file_seconds: float) -> list[str]:
    by_id = {user.user_id: user for user in users}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(CONSISTENCY_SQL, (list(by_id),)).fetchall()
    problems = []
    for user_id, *actual in rows:
        user = by_id.pop(user_id)
        for name, got, want in zip(COLUMNS, actual, expected_rows(user, file_seconds), strict=True):
            if not _agrees(name, float(got), want, user):
                problems.append(f"database, {user.email}: {name} {got}, requests say {want}")
    problems += [f"database: no row for {user.email}" for user in by_id.values()]
    return problems


def check_api(api: str, users: list[SimUser], file_seconds: float) -> list[str]:
    """The API's own summaries (profile detail, quota) must tell the same story."""
    problems = []
    with httpx.Client(base_url=api, timeout=60) as client:
        for user in users:
            detail = client.get(f"/profiles/{user.profile_id}", headers=user.headers).json()
            quota = client.get("/quota", headers=user.headers).json()
            want = expected_rows(user, file_seconds)
            got = {
                "pending files": (detail["dataset"]["pending_files"], want[1]),
                "ready files": (detail["dataset"]["ready_files"], want[2]),
                "ready seconds": (detail["dataset"]["ready_seconds"], want[3]),
                "trainings used": (quota["training"]["used"], user.succeeded[TRAININGS]),
                "conversions used": (quota["conversion"]["used"], user.succeeded[CONVERSIONS]),
            }
            problems += [
                f"API, {user.email}: {name} {have}, requests say {should}"
                for name, (have, should) in got.items()
                if not _agrees(name, float(have), should, user)
            ]
    return problems


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def route_figures(tally: Tally) -> dict[str, dict[str, Any]]:
    """Per route: requests answered, p50 and p99 in ms, and the answers by status and code."""
    out = {}
    for route in [PROFILES, *(action.route for action in ACTIONS)]:
        ordered = sorted(tally.latencies[route])
        if not ordered:
            continue
        out[route] = {
            "count": len(ordered),
            "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
            "answers": {
                f"{s}{' ' + c if c else ''}": n
                for (r, s, c), n in sorted(tally.answers.items())
                if r == route
            },
        }
    return out


def fault_figures(tally: Tally, fault: Fault | None) -> dict[str, Any]:
    """5xx and cut-off requests inside the fault's window (from when the dependency went away
    to `RECOVERY_GOAL_SECONDS` after it was back) and outside it, and the recovery time: from
    the dependency back to the last failed answer (0 when none came after)."""
    start = fault.start if fault and fault.start is not None else float("inf")
    end = fault.end if fault and fault.end is not None else float("inf")
    inside = [f for f in tally.failures if f[1] >= start and f[0] <= end + RECOVERY_GOAL_SECONDS]
    outside = [f for f in tally.failures if f not in inside]
    after = [f[1] - end for f in tally.failures if f[1] > end]
    return {
        "server_errors": sum(1 for f in tally.failures if f[3] >= 500),
        "server_errors_in_fault_window": sum(1 for f in inside if f[3] >= 500),
        "server_errors_outside_fault_window": sum(1 for f in outside if f[3] >= 500),
        "no_answer_in_fault_window": sum(1 for f in inside if f[3] == 0),
        "no_answer_outside_fault_window": sum(1 for f in outside if f[3] == 0),
        "unavailable_without_retry_after": tally.unavailable_without_retry_after,
        "fault_down_s": round(end - start, 1) if fault and fault.end is not None else None,
        "recovery_s": (round(max(after), 2) if after else 0.0) if fault else None,
    }


def report(tally: Tally, users: list[SimUser], wall: float) -> None:
    served = sum(tally.answers.values())
    print(f"requests served: {served} in {wall:.1f} s ({served / wall:.1f} req/s)")
    by_status = Counter[int]()
    for (_, status, _), n in tally.answers.items():
        by_status[status] += n
    print("by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    print(f"\n{'route':<38} {'count':>7} {'p50 ms':>9} {'p99 ms':>9}  answers")
    for route, fig in route_figures(tally).items():
        answers = ", ".join(f"{a}: {n}" for a, n in fig["answers"].items())
        print(
            f"{route:<38} {fig['count']:>7} {fig['p50_ms']:>9.1f} {fig['p99_ms']:>9.1f}  {answers}"
        )
    accepted = sum(u.succeeded[UPLOADS] for u in users)
    print(f"accepted upload requests: {accepted} over {len(users)} profiles")


class Api:
    """The API process (`bench/load_api.py`: uvicorn plus its pool and CPU counters), which a
    fault may SIGKILL and restart on the same port."""

    def __init__(self, port: int, env: dict[str, str], stats_file: Path) -> None:
        self.port, self.env, self.stats_file = port, env, stats_file
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "bench.load_api", str(self.port), str(self.stats_file)]
        self.proc = subprocess.Popen(args, env=os.environ | self.env, cwd=REPO_ROOT)
        wait_healthy(self.proc, self.url, 120.0)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class Bench:
    users: list[int]
    faults: list[str]
    seconds: float
    outage: float
    seed: int
    default_rate_limits: bool
    warm_up: bool
    json_out: Path | None = None
    small: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self) -> int:
        """Every user count with faults off, then with each fault alone, on one stack (each
        run with users of its own, so the per-user checks stay exact)."""
        with tempfile.TemporaryDirectory() as tmp, self.stack(Path(tmp)) as (stack, api):
            n = 0
            for count in self.users:
                for fault in self.faults:
                    n += 1
                    label = f"{count} users, fault {fault}"
                    print(f"\n=== run {n}: {label}, {self.seconds:.0f} s ===", flush=True)
                    result = self.one_run(stack, api, count, fault, n)
                    self.results.append(result)
                    self.failures += [f"{label}: {p}" for p in result["problems"]]
        print_table(self.results)
        if self.json_out is not None:
            doc = {
                "machine": {"cores": psutil.cpu_count(), "note": MACHINE_NOTE},
                "seconds": self.seconds,
                "outage_s": self.outage,
                "small": self.small,
                "runs": self.results,
            }
            self.json_out.write_text(json.dumps(doc, indent=2) + "\n")
        for failure in self.failures:
            print(f"FAIL {failure}")
        return 1 if self.failures else 0

    def one_run(self, stack: ChaosStack, api: Api, count: int, kind: str, n: int) -> dict[str, Any]:
        settings = stack.settings()
        # Enough for a training, well within the longest dataset a training takes.
        file_seconds = settings.min_dataset_seconds / 2
        users = self.sign_in(stack, count, n)
        tally = Tally()
        if self.warm_up:
            # One signed-in request first, so the API's JWKS cache is filled before the
            # crowd arrives (see --no-warm-up).
            httpx.get(f"{api.url}/quota", headers=users[0].headers, timeout=60).raise_for_status()
        asyncio.run(self.create_profiles(api.url, users, tally))
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            for user in users:
                if user.seeded:
                    seed_trained_profile(conn, user, file_seconds)
        fault = None
        if kind != "none":
            at = self.seconds / 3
            fault = Fault(kind, at, self.outage, restart_api=api.start, kill_api=api.kill)
        sampler = Sampler(api.stats_file, stack.database_url, lambda: _postmaster_pid(stack))
        sampler.start()
        t0 = time.monotonic()
        firing = fault.fire(stack, t0) if fault else None
        wall = asyncio.run(drive(api.url, users, self.seconds, self.seed + n, tally))
        sampler.stop()
        if firing is not None:
            firing.join(120)
        report(tally, users, wall)
        problems = [f"transport error {k}: {v}" for k, v in tally.transport_errors.items()]
        problems = [] if fault else problems  # with a fault, judged by its window below
        problems += [
            f"unexpected answer {route} -> {status} {code}: {v}"
            for (route, status, code), v in tally.unexpected.items()
        ]
        figures = fault_figures(tally, fault)
        if figures["server_errors_outside_fault_window"]:
            problems.append(
                f"5xx outside the fault window: {figures['server_errors_outside_fault_window']}"
            )
        if fault and figures["no_answer_outside_fault_window"]:
            problems.append(
                f"no answer outside the fault window: {figures['no_answer_outside_fault_window']}"
            )
        if figures["unavailable_without_retry_after"]:
            problems.append(
                f"503 without Retry-After: {figures['unavailable_without_retry_after']}"
            )
        if fault and fault.error:
            problems.append(f"fault {kind} did not run cleanly: {fault.error}")
        problems += check_database(stack.database_url, users, file_seconds)
        problems += check_api(api.url, users, file_seconds)
        served = sum(tally.answers.values())
        latencies = sorted(x for v in tally.latencies.values() for x in v)
        routes = route_figures(tally)
        return {
            "users": count,
            "fault": kind,
            "seconds": round(wall, 1),
            "served": served,
            "per_second": round(served / wall, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
            "routes": routes,
            **figures,
            "transport_errors": dict(tally.transport_errors),
            "diagnosis": sampler.diagnosis(served) | _loop_lag(tally),
            "problems": problems,
        }

    @staticmethod
    async def create_profiles(api: str, users: list[SimUser], tally: Tally) -> None:
        async with httpx.AsyncClient(base_url=api, timeout=60) as client:
            await create_profiles(client, users, tally)

    @staticmethod
    def sign_in(stack: LocalStack, count: int, run: int) -> list[SimUser]:
        users = []
        for i in range(count):
            email = f"load-{run}-{i}@localhost"
            session = stack.dev_session(email)
            user_id = UUID(session["user"]["id"])
            users.append(SimUser(email, user_id, session["access_token"], seeded=i % 2 == 1))
        return users

    def stack(self, root: Path) -> contextlib.AbstractContextManager[tuple[ChaosStack, Api]]:
        return _stack(root, {} if self.default_rate_limits else RAISED_RATE_LIMITS)


def _loop_lag(tally: Tally) -> dict[str, float]:
    out = {}
    for name, values in [("client_loop_lag", tally.loop_lag), *tally.legs.items()]:
        ordered = sorted(values)
        if ordered:
            out[f"{name}_p50_ms"] = round(statistics.median(ordered) * 1000, 1)
            out[f"{name}_p99_ms"] = round(percentile(ordered, 0.99) * 1000, 1)
    return out


def _postmaster_pid(stack: ChaosStack) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((stack.pgdata / "postmaster.pid").read_text().split()[0])
    return None


def print_table(results: list[dict[str, Any]]) -> None:
    """One line per run: what was served, what failed and when, the latency, the recovery,
    and where the time went (pool waits, CPU)."""
    head = (
        f"{'users':>5} {'fault':<12} {'served':>7} {'req/s':>6} {'5xx':>5} {'5xx out':>7}"
        f" {'no ans':>6} {'p50 ms':>7} {'p99 ms':>7} {'worst p99 route':<36} {'recov s':>7}"
        f" {'pool wait%':>10} {'wait ms':>7} {'API cpu%':>8} {'PG cpu%':>7} {'box cpu%':>8}"
    )
    print("\n" + head)
    for r in results:
        worst = max(r["routes"].items(), key=lambda kv: kv[1]["p99_ms"], default=("-", {}))
        pool = r["diagnosis"].get("pool", {})
        no_answer = r["no_answer_in_fault_window"] + r["no_answer_outside_fault_window"]
        recovery = "-" if r["recovery_s"] is None else f"{r['recovery_s']:.2f}"
        print(
            f"{r['users']:>5} {r['fault']:<12} {r['served']:>7} {r['per_second']:>6.0f}"
            f" {r['server_errors']:>5} {r['server_errors_outside_fault_window']:>7}"
            f" {no_answer:>6} {r['p50_ms'] or 0:>7.0f} {r['p99_ms'] or 0:>7.0f}"
            f" {worst[0] + ' ' + str(worst[1].get('p99_ms', '')):<36} {recovery:>7}"
            f" {pool.get('waited_percent', 0):>10.1f}"
            f" {pool.get('wait_ms_mean_of_waiters', 0):>7.1f}"
            f" {r['diagnosis'].get('api_cpu_percent_of_one_core', 0):>8.0f}"
            f" {r['diagnosis'].get('postgres_cpu_percent_of_one_core', 0):>7.0f}"
            f" {r['diagnosis'].get('machine_cpu_percent', 0):>8.0f}"
        )


@contextlib.contextmanager
def _stack(root: Path, api_env: dict[str, str]) -> Iterator[tuple[ChaosStack, Api]]:
    """Postgres, SeaweedFS, the token issuer and the API on free ports, removed afterwards;
    breakable as the fault harness breaks them (`ChaosStack`)."""
    (root / "work").mkdir(parents=True, exist_ok=True)
    env = api_env | {"VC_WORK_DIR": str(root / "work")}
    config = StackConfig(
        root=root, auth_port=free_port(), s3_base_port=find_free_base(), api_env=env
    )
    stack = ChaosStack(config)
    api = None
    try:
        stack.start_database()
        stack.start_storage()
        stack.start_auth()
        api = Api(free_port(), stack.env(), root / "api-stats.json")
        api.start()
        yield stack, api
    finally:
        if api is not None:
            api.stop()
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="16", help="simulated users (half seeded); 16,64")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    parser.add_argument(
        "--faults",
        default="none",
        help=f"comma-separated, a run each: none (faults off), all, or of {','.join(LOAD_FAULTS)}",
    )
    parser.add_argument("--outage", type=float, default=8.0, help="seconds a dependency is down")
    parser.add_argument("--seed", type=int, default=1, help="seed of the users' random choices")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument(
        "--small", action="store_true", help="a quick run of every part (the suite's smoke test)"
    )
    parser.add_argument(
        "--default-rate-limits",
        action="store_true",
        help="keep the VC_RATE_* defaults instead of raising them (429s are counted)",
    )
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="let every user's first request meet the API's empty JWKS cache at once",
    )
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    if faults == ["all"]:
        faults = ["none", *LOAD_FAULTS]
    unknown = set(faults) - {"none", *LOAD_FAULTS}
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}")
    users = [int(u) for u in args.users.split(",")]
    seconds, outage = args.seconds, args.outage
    if args.small:
        users, seconds, outage = [4], 6.0, 1.0
        faults = ["none", "pg_terminate"]
    bench = Bench(
        users,
        faults,
        seconds,
        outage,
        args.seed,
        args.default_rate_limits,
        not args.no_warm_up,
        args.json,
        args.small,
    )
    sys.exit(bench.run())


if __name__ == "__main__":
    main()
