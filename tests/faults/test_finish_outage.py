"""A worker whose database is down at the moment it finishes keeps its finished work.

Found by stopping Postgres (the harness's `pg_restart`) right after a worker's upload phase:
the model was in the bucket, the finish (`finish_training`) raised `Unavailable`, the runtime
took that for the job's own failure, tried to record INTERNAL (the database still down), and
the worker died with the row `running`; the reaper failed it WORKER_LOST later, the model
version was never recorded and its objects became orphans: a whole training lost to a restart
of a few seconds. The finish is now retried with backoff while the reaper would still wait
for the worker (`VC_HEARTBEAT_TIMEOUT_SECONDS` since its last beat); past that it is the
reaper's job.
"""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from gpu.job_runtime import KINDS, JobRun
from pipeline import keys
from pipeline.db import PostgresDatabase
from pipeline.errors import Unavailable
from pipeline.repository import Repository
from pipeline.settings import Settings
from tests.faults.stack import ChaosStack
from tests.helpers import ready_dataset

pytestmark = pytest.mark.faults


class FinishInAnOutage(JobRun):
    """A training whose phases are done (model uploaded) when `outage` takes the database
    away; then the real finish."""

    spec = KINDS["training"]

    def __init__(self, repo: Repository, job_id: UUID, outage: Callable[[], None]) -> None:
        super().__init__(repo, None, repo.settings, job_id)  # type: ignore[arg-type]
        self.outage = outage
        self.version = uuid4()

    def phases(self, job) -> None:
        self.phase("upload", percent=100)
        self.outage()
        model_key = keys.model_key(job.user_id, job.profile_id, self.version)
        config_key = keys.model_config_key(job.user_id, job.profile_id, self.version)
        self.finish(self.version, model_key, config_key, 1234, {"loss_g": 1.0})


@pytest.fixture
def repos(
    own_postgres: ChaosStack, settings: Settings, tmp_path: Path
) -> Iterator[tuple[Repository, Callable[[int], Repository]]]:
    """The service's repository on the breakable database, and a worker's (the worker login,
    a pool that gives up waiting for a connection sooner than an outage lasts)."""
    own_postgres.start_postgres_if_stopped()
    base = settings.model_copy(
        update={
            "database_url": own_postgres.database_url,
            "work_dir": str(tmp_path / "work"),
            "scratch_dir": str(tmp_path),
        }
    )
    service_db = PostgresDatabase(own_postgres.database_url, max_size=2)
    opened = [service_db]

    def worker(timeout: int) -> Repository:
        db = PostgresDatabase(own_postgres.worker_database_url, max_size=2, timeout=1)
        opened.append(db)
        return Repository(db, base.model_copy(update={"heartbeat_timeout_seconds": timeout}))

    yield Repository(service_db, base), worker
    own_postgres.start_postgres_if_stopped()
    for db in opened:
        db.close()


def _training(stack: ChaosStack, repo: Repository) -> UUID:
    user = stack.ensure_user(f"finish-{time.monotonic_ns()}@test.local")
    profile = repo.create_profile(user, "finish outage")
    ready_dataset(repo, user, profile.id, 200)
    return repo.start_training(user, profile.id, {"preset": "tiny"}).id


def _state(stack: ChaosStack, job_id: UUID) -> tuple:
    with stack.sql() as conn:
        return conn.execute(
            "select j.status, j.quota_state, j.error_code,"
            " (select count(*) from public.model_versions v where v.training_job_id = j.id)"
            " from public.training_jobs j where j.id = %s",
            (job_id,),
        ).fetchone()


def test_a_finish_during_a_restart_waits_for_the_database(own_postgres, repos) -> None:
    service, worker = repos
    job_id = _training(own_postgres, service)
    back = threading.Timer(6, own_postgres.start_postgres)

    def restart() -> None:
        own_postgres.stop_postgres()
        back.start()

    try:
        status = FinishInAnOutage(worker(60), job_id, restart).run()
    finally:
        back.join()
    assert status == "succeeded"
    assert _state(own_postgres, job_id) == ("succeeded", "charged", None, 1)


def test_a_finish_gives_up_once_the_job_is_the_reapers(own_postgres, repos) -> None:
    service, worker = repos
    job_id = _training(own_postgres, service)
    started = time.monotonic()
    with pytest.raises(Unavailable):  # the worker exits; the row is still `running`
        FinishInAnOutage(worker(3), job_id, own_postgres.stop_postgres).run()
    assert time.monotonic() - started < 60
    own_postgres.start_postgres()
    assert _state(own_postgres, job_id)[:2] == ("running", "reserved")  # the reaper's now
