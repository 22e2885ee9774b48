"""One lock order (user → profile → job → spend): an erasure or a profile's deletion racing a
worker's heartbeat waits instead of deadlocking. The race is forced, not hoped for: a third
session holds the user's GPU spend row until both sides are queued behind it, which is the
moment the old order turned into a cycle (Postgres answered 40P01 to one side)."""

import threading
import time
from collections.abc import Callable
from uuid import UUID

import psycopg

from tests.helpers import ready_dataset


def _running_separations(repo, user_id: UUID, profile_id: UUID, count: int) -> list[UUID]:
    jobs = []
    for _ in range(count):
        mix = ready_dataset(repo, user_id, profile_id, 30, full_mix=True)
        job = repo.take_separation(mix).job
        repo.claim_job("separation", job.id)
        jobs.append(job.id)
    return jobs


def _waiting_on_a_lock(admin: psycopg.Connection, pid: int) -> bool:
    row = admin.execute(
        "select wait_event_type from pg_stat_activity where pid = %s", (pid,)
    ).fetchone()
    return bool(row) and row[0] == "Lock"


def _race(database_url: str, user_id: UUID, first: str, args: tuple, jobs: list[UUID]) -> list:
    """`first` (SQL) starts and queues behind a session that holds the user's spend row;
    then a heartbeat of one of `jobs` that `first` has not locked yet (if any) queues too;
    then the spend is released. Returns what each side raised."""
    errors: list = []
    with psycopg.connect(database_url, autocommit=True) as admin:
        holder = psycopg.connect(database_url)
        holder.execute("select 1 from public.gpu_spend where user_id = %s for update", (user_id,))

        def run(sql: str, params: tuple, pids: list) -> Callable[[], None]:
            def go() -> None:
                with psycopg.connect(database_url, autocommit=True) as conn:
                    pids.append(conn.info.backend_pid)
                    try:
                        conn.execute(sql, params)
                    except psycopg.Error as exc:
                        errors.append(exc)

            return go

        def started(sql: str, params: tuple) -> threading.Thread:
            pids: list[int] = []
            thread = threading.Thread(target=run(sql, params, pids))
            thread.start()
            deadline = time.monotonic() + 20
            while not (pids and _waiting_on_a_lock(admin, pids[0])):
                assert time.monotonic() < deadline, "never queued behind a lock"
                time.sleep(0.02)
            return thread

        threads = [started(first, args)]
        with admin.transaction():
            free = admin.execute(
                "select id from public.separation_jobs where id = any(%s) for update skip locked",
                (jobs,),
            ).fetchall()
        beat = free[0][0] if free else jobs[-1]
        threads.append(
            started(
                "select public.heartbeat_job(p_kind => 'separation', p_job_id => %s, "
                'p_attempt => null, p_progress => \'{"phase": "separate"}\')',
                (beat,),
            )
        )
        holder.rollback()
        holder.close()
        for thread in threads:
            thread.join(30)
    return errors


def test_erasure_racing_a_heartbeat_does_not_deadlock(stack, repo, make_user) -> None:
    for _ in range(3):
        user = make_user()
        profile = repo.create_profile(user.id, "erase race")
        first, second = _running_separations(
            repo, user.id, profile.id, 2
        )  # erase ends `first` first
        repo.heartbeat_job("separation", first, {"phase": "separate"})  # the spend row exists
        errors = _race(
            stack.database_url,
            user.id,
            "select public.erase_user_data(%s)",
            (user.id,),
            [first, second],
        )
        assert not [e for e in errors if isinstance(e, psycopg.errors.DeadlockDetected)], errors


def test_deleting_a_voice_racing_a_heartbeat_does_not_deadlock(stack, repo, make_user) -> None:
    user = make_user()
    profile = repo.create_profile(user.id, "delete race")
    first, second = _running_separations(repo, user.id, profile.id, 2)
    repo.heartbeat_job("separation", first, {"phase": "separate"})
    errors = _race(
        stack.database_url,
        user.id,
        "select public.delete_profile(%s, %s)",
        (user.id, profile.id),
        [first, second],
    )
    assert not [e for e in errors if isinstance(e, psycopg.errors.DeadlockDetected)], errors
