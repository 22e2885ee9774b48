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
import psycopg

from pipeline import keys
from pipeline.local.processes import stop_process
from pipeline.local.seaweed import find_free_base, free_port
from pipeline.local.stack import REPO_ROOT, LocalStack, StackConfig

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
    try:
        response = await client.request(method, path, json=body, headers=user.headers)
    except httpx.HTTPError as exc:
        tally.transport_errors[f"{route}: {type(exc).__name__}"] += 1
        return None
    tally.latencies[route].append(time.perf_counter() - start)
    code = ""
    if response.status_code >= 400:
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "(not the error body)"
    answer = (route, response.status_code, code)
    tally.answers[answer] += 1
    if (response.status_code, code) not in expected(route, user.seeded):
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
        await send(client, user, tally, action.route, action.method, path, action.body)


async def drive(api: str, users: list[SimUser], seconds: float, seed: int, tally: Tally) -> float:
    """Runs every user until the deadline; returns the wall seconds the mixed phase took."""
    limits = httpx.Limits(max_connections=len(users), max_keepalive_connections=len(users))
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(act(client, u, tally, random.Random(seed + i), deadline) for i, u in enumerate(users))
        )
        return time.perf_counter() - start


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


def check_database(database_url: str, users: list[SimUser], file_seconds: float) -> list[str]:
    by_id = {user.user_id: user for user in users}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(CONSISTENCY_SQL, (list(by_id),)).fetchall()
    problems = []
    for user_id, *actual in rows:
        user = by_id.pop(user_id)
        for name, got, want in zip(COLUMNS, actual, expected_rows(user, file_seconds), strict=True):
            if abs(float(got) - want) > 1e-6:
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
                if abs(float(have) - should) > 1e-6
            ]
    return problems


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def report(tally: Tally, users: list[SimUser], wall: float) -> None:
    served = sum(tally.answers.values())
    print(f"requests served: {served} in {wall:.1f} s ({served / wall:.1f} req/s)")
    by_status = Counter[int]()
    by_code = Counter[tuple[int, str]]()
    for (_, status, code), n in tally.answers.items():
        by_status[status] += n
        if code:
            by_code[(status, code)] += n
    print("by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    for (status, code), n in sorted(by_code.items()):
        print(f"  {status} {code}: {n}")
    server_errors = sum(n for s, n in by_status.items() if s >= 500)
    rate_limited = by_code[(429, "RATE_LIMITED")]
    print(f"server errors (5xx): {server_errors}   rate limited (429 RATE_LIMITED): {rate_limited}")
    print(f"\n{'route':<38} {'count':>7} {'p50 ms':>9} {'p99 ms':>9}  answers")
    for route in [PROFILES, *(action.route for action in ACTIONS)]:
        ordered = sorted(tally.latencies[route])
        if not ordered:
            continue
        answers = ", ".join(
            f"{s}{' ' + c if c else ''}: {n}"
            for (r, s, c), n in sorted(tally.answers.items())
            if r == route
        )
        p50, p99 = statistics.median(ordered) * 1000, percentile(ordered, 0.99) * 1000
        print(f"{route:<38} {len(ordered):>7} {p50:>9.1f} {p99:>9.1f}  {answers}")
    accepted = sum(u.succeeded[UPLOADS] for u in users)
    print(f"\naccepted upload requests: {accepted} over {len(users)} profiles")


def serve_api(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The real API as `svc-local up` serves it, without a log line per request."""
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "endpoints.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(args, env=os.environ | env, cwd=REPO_ROOT)
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("the API exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not become healthy")


@dataclass
class Bench:
    users: int
    seconds: float
    seed: int
    default_rate_limits: bool
    warm_up: bool

    def run(self) -> int:
        with tempfile.TemporaryDirectory() as tmp, self.stack(Path(tmp)) as (stack, api):
            settings = stack.settings()
            # Enough for a training, well within the longest dataset a training takes.
            file_seconds = settings.min_dataset_seconds / 2
            users = self.sign_in(stack)
            tally = Tally()
            if self.warm_up:
                # One signed-in request first, so the API's JWKS cache is filled before the
                # crowd arrives (see --no-warm-up).
                httpx.get(f"{api}/quota", headers=users[0].headers, timeout=60).raise_for_status()
            asyncio.run(self.create_profiles(api, users, tally))
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                for user in users:
                    if user.seeded:
                        seed_trained_profile(conn, user, file_seconds)
            seeded = sum(u.seeded for u in users)
            limits = "default" if self.default_rate_limits else "raised"
            print(
                f"{len(users)} users ({seeded} with a trained model and quotas of 0, "
                f"{len(users) - seeded} with an empty dataset), {self.seconds:.0f} s, "
                f"rate limits {limits}\n"
            )
            wall = asyncio.run(drive(api, users, self.seconds, self.seed, tally))
            report(tally, users, wall)
            problems = check_database(stack.database_url, users, file_seconds)
            problems += check_api(api, users, file_seconds)
        return self.verdict(tally, problems)

    @staticmethod
    async def create_profiles(api: str, users: list[SimUser], tally: Tally) -> None:
        async with httpx.AsyncClient(base_url=api, timeout=60) as client:
            await create_profiles(client, users, tally)

    def sign_in(self, stack: LocalStack) -> list[SimUser]:
        users = []
        for i in range(self.users):
            email = f"load-{i}@localhost"
            session = stack.dev_session(email)
            user_id = UUID(session["user"]["id"])
            users.append(SimUser(email, user_id, session["access_token"], seeded=i % 2 == 1))
        return users

    def stack(self, root: Path) -> contextlib.AbstractContextManager[tuple[LocalStack, str]]:
        return _stack(root, {} if self.default_rate_limits else RAISED_RATE_LIMITS)

    @staticmethod
    def verdict(tally: Tally, problems: list[str]) -> int:
        failures = [f"transport error {k}: {n}" for k, n in tally.transport_errors.items()]
        failures += [
            f"unexpected answer {route} -> {status} {code}: {n}"
            for (route, status, code), n in tally.unexpected.items()
        ]
        failures += problems
        print("\nconsistency with the database and the API's summaries:")
        if not problems:
            print("  every profile, dataset total, job row, quota counter and GPU spend agrees")
        for failure in failures:
            print(f"  FAIL {failure}")
        return 1 if failures else 0


@contextlib.contextmanager
def _stack(root: Path, api_env: dict[str, str]) -> Iterator[tuple[LocalStack, str]]:
    """Postgres, SeaweedFS, the token issuer and the API on free ports, removed afterwards."""
    config = StackConfig(
        root=root, auth_port=free_port(), s3_base_port=find_free_base(), api_env=api_env
    )
    stack = LocalStack(config)
    api_proc = None
    try:
        stack.start_database()
        stack.start_storage()
        stack.start_auth()
        port = free_port()
        api_proc = serve_api(port, stack.env())
        yield stack, f"http://127.0.0.1:{port}"
    finally:
        stop_process(api_proc)
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16, help="simulated users (half seeded)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the mixed phase")
    parser.add_argument("--seed", type=int, default=1, help="seed of the users' random choices")
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
    bench = Bench(
        args.users, args.seconds, args.seed, args.default_rate_limits, not args.no_warm_up
    )
    sys.exit(bench.run())


if __name__ == "__main__":
    main()
