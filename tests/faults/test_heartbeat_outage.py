"""A worker's heartbeat rides out a short database outage instead of failing its job.

Found while aiming the fault harness's `pg_restart` at a training: Postgres restarted for a
few seconds while a training beat from its main thread (the train, evaluate or upload
phase), the beat raised `Unavailable`, the training took it for its own failure and tried to
record that (the database still down), so the worker died with the job `running` and the
reaper failed it (WORKER_LOST) later: minutes of GPU work lost to a restart that hosted
Postgres does for every minor upgrade. A missed beat is now only missed while the reaper
would still wait for the next one (`VC_HEARTBEAT_TIMEOUT_SECONDS`); past that the job is the
reaper's and the worker stops.
"""

import threading
import time
from collections.abc import Iterator

import pytest

from gpu.errors import Heartbeat
from pipeline.db import PostgresDatabase
from pipeline.errors import Unavailable
from pipeline.repository import Repository
from pipeline.settings import Settings
from tests.faults.stack import ChaosStack
from tests.helpers import ready_dataset

pytestmark = pytest.mark.faults


def _settings(stack: ChaosStack, base: Settings, timeout: int) -> Settings:
    """The session's settings on the breakable database."""
    url = stack.database_url
    return base.model_copy(
        update={"database_url": url, "heartbeat_timeout_seconds": timeout, "db_pool_max": 2}
    )


@pytest.fixture
def worker_repo(own_postgres: ChaosStack, settings: Settings) -> Iterator[Repository]:
    own_postgres.start_postgres_if_stopped()
    settings = _settings(own_postgres, settings, 30)
    # a pool that gives up waiting for a connection sooner than the outage lasts
    db = PostgresDatabase(settings.database_url, max_size=2, timeout=1)
    yield Repository(db, settings)
    db.close()


def _running_training(stack: ChaosStack, repo: Repository) -> Heartbeat:
    user = stack.ensure_user(f"hb-{time.monotonic_ns()}@test.local")
    profile = repo.create_profile(user, "outage")
    ready_dataset(repo, user, profile.id, 200)
    job = repo.start_training(user, profile.id, {"preset": "tiny"})
    heartbeat = Heartbeat(repo, "training", job.id)
    heartbeat.claim()
    heartbeat.require(phase="train", step=1, total_steps=10)
    return heartbeat


def test_a_beat_during_a_restart_is_missed_not_fatal(own_postgres, worker_repo) -> None:
    heartbeat = _running_training(own_postgres, worker_repo)
    own_postgres.stop_postgres()
    back = threading.Timer(4, own_postgres.start_postgres)
    back.start()
    try:
        heartbeat.require(phase="train", step=2)  # the database is down: a missed beat
    finally:
        back.join()
    # and back: the job goes on (the pool may take a few beats to reconnect)
    deadline = time.monotonic() + 60
    while (row := _row(own_postgres, heartbeat))[1] != 3:
        assert time.monotonic() < deadline, row
        heartbeat.require(phase="train", step=3)
        time.sleep(0.5)
    assert row[0] == "running"


def _row(stack: ChaosStack, heartbeat: Heartbeat) -> tuple[str, int | None]:
    with stack.sql() as conn:
        status, step = conn.execute(
            "select status, (progress ->> 'step')::int from public.training_jobs where id = %s",
            (heartbeat.job_id,),
        ).fetchone()
    return status, step


def test_beats_missed_past_the_reapers_timeout_stop_the_worker(own_postgres, settings) -> None:
    settings = _settings(own_postgres, settings, 2)
    db = PostgresDatabase(settings.database_url, max_size=2, timeout=1)
    repo = Repository(db, settings)
    try:
        heartbeat = _running_training(own_postgres, repo)
        own_postgres.stop_postgres()
        time.sleep(2.5)  # the reaper may take the job from now on
        with pytest.raises(Unavailable):
            heartbeat.require(phase="train", step=2)
    finally:
        own_postgres.start_postgres_if_stopped()
        db.close()
