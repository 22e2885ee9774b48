"""The worker runtime (gpu/job_runtime.py) with a throwaway job kind whose phases are trivial:
what every kind gets from it alone (claim, heartbeats that charge GPU time, finish, failure
described on the row, quiet stops, dirs removed on every exit path, Modal's
`InputCancellation` passed on), against the real database as the worker login.

The kind's SQL side is the training's (claim, heartbeat and fail are one function for every
kind; a kind that exists only in a test needs the generic job machine in SQL first), so the
throwaway kind here is a new worker-side declaration over training rows."""

from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from modal.exception import InputCancellation

from gpu.errors import JobCanceled, JobFailure
from gpu.job_runtime import JobKindSpec, JobRun
from pipeline import keys
from pipeline.repository import Repository
from tests.helpers import new_conversion, ready_dataset, trained_profile

SCRATCH_FILE = "scratch.bin"


class ToyRun(JobRun):
    """Phases given by the test; the scratch and work dirs it saw are remembered."""

    spec = JobKindSpec("training", "The toy job", Repository.finish_training, keeps_work=True)

    def __init__(self, services, job_id: UUID, phases) -> None:
        super().__init__(services.worker_repo, services.storage, services.settings, job_id)
        self._phases = phases
        self.seen: Path | None = None

    def phases(self, job) -> None:
        self.seen = self.scratch
        (self.scratch / SCRATCH_FILE).write_bytes(b"\0" * 16)
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "G_1.pth").write_bytes(b"\0" * 16)
        self._phases(self, job)


def _job(repo: Repository, user_id: UUID, name: str) -> UUID:
    profile = repo.create_profile(user_id, name)
    ready_dataset(repo, user_id, profile.id, 200)
    return repo.start_training(user_id, profile.id, {"preset": "tiny"}).id


def _finish(run: JobRun, job) -> None:
    version = uuid4()
    model_key = keys.model_key(job.user_id, job.profile_id, version)
    config_key = keys.model_config_key(job.user_id, job.profile_id, version)
    run.finish(version, model_key, config_key, 1234, {"loss_g": 1.0})


def _ran_for(sql: psycopg.Connection, job_id: UUID, seconds: float) -> None:
    """As if the worker's last heartbeat was `seconds` ago."""
    sql.execute(
        "update public.training_jobs set heartbeat_at = now() - make_interval(secs => %s) "
        "where id = %s",
        (seconds, job_id),
    )


def _cleaned(run: ToyRun) -> bool:
    return run.seen is not None and not run.seen.exists() and not run.work.exists()


def test_phases_that_finish_end_the_job_succeeded_and_leave_no_dirs(services, repo, alice):
    job_id = _job(repo, alice.id, "toy success")
    reported: list[bool] = []
    shown: list[str] = []

    def phases(run: JobRun, job) -> None:
        run.phase("prepare", percent=0)
        reported.append(run.progress("train")(0.5))
        run.phase("upload", percent=100)
        shown.append(repo.get_job("training", alice.id, job_id).progress.phase)
        _finish(run, job)

    run = ToyRun(services, job_id, phases)
    assert run.run() == "succeeded"
    assert repo.get_job("training", alice.id, job_id).status == "succeeded"
    assert shown == ["upload"], "the phase the page shows"
    assert reported == [True]
    assert _cleaned(run)
    assert ToyRun(services, job_id, phases).run() == "succeeded", "an ended job is left alone"


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (RuntimeError("boom"), "INTERNAL", "The toy job failed unexpectedly."),
        (MemoryError(), "OUT_OF_MEMORY", "The toy job ran out of memory."),
        (JobFailure("DATASET_TOO_SHORT", "Too short."), "DATASET_TOO_SHORT", "Too short."),
    ],
)
def test_a_phase_that_raises_fails_the_job_with_the_described_failure(
    services, repo, alice, raised, code, message
):
    job_id = _job(repo, alice.id, f"toy {code}")

    def phases(run: JobRun, job) -> None:
        run.phase("prepare")
        raise raised

    run = ToyRun(services, job_id, phases)
    assert run.run() == "failed"
    job = repo.get_job("training", alice.id, job_id)
    assert (job.status, job.error_code) == ("failed", code)
    assert job.error_message.startswith(message)
    assert repo.quota_status(alice.id).training.used == 0, "refunded by the fail rules"
    assert _cleaned(run)


def test_a_cancel_seen_by_a_heartbeat_stops_the_phases_quietly(services, repo, alice):
    job_id = _job(repo, alice.id, "toy cancel")
    after: list[str] = []

    def phases(run: JobRun, job) -> None:
        repo.cancel_job("training", alice.id, job_id)
        assert run.progress("train")(0.3) is False
        run.phase("train")  # raises JobCanceled
        after.append("went on")

    run = ToyRun(services, job_id, phases)
    assert run.run() == "canceled"
    assert after == []
    assert repo.get_job("training", alice.id, job_id).status == "canceled"
    assert _cleaned(run)


def test_input_cancellation_cleans_up_and_propagates(services, repo, alice):
    """Modal's cancel is a BaseException raised inside the phases: the runtime does not
    swallow it (Modal must see it), and the dirs of a canceled job still go."""
    job_id = _job(repo, alice.id, "toy modal cancel")

    def phases(run: JobRun, job) -> None:
        run.phase("train")
        repo.cancel_job("training", alice.id, job_id)
        raise InputCancellation("the input was canceled")

    run = ToyRun(services, job_id, phases)
    with pytest.raises(InputCancellation):
        run.run()
    assert _cleaned(run)


def test_an_interrupted_kind_without_a_work_dir_keeps_nothing(services, repo, alice):
    """A preemption of a kind that does not resume: the row stays running for its retry,
    and the scratch dir still goes."""

    class Scratchy(ToyRun):
        spec = JobKindSpec("training", "The toy job", Repository.finish_training)

    job_id = _job(repo, alice.id, "toy preempted")

    def phases(run: JobRun, job) -> None:
        raise KeyboardInterrupt

    run = Scratchy(services, job_id, phases)
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert _cleaned(run)
    assert repo.get_job("training", alice.id, job_id).status == "running"


def test_heartbeats_charge_gpu_time_and_a_spent_budget_stops_the_job(services, repo, sql, alice):
    """Each heartbeat of the phases charges the time since the last; once the budget is
    spent the next one stops the job (failed, GPU_BUDGET_EXHAUSTED) and a resumable kind
    keeps its work dir for the grace period."""
    sql.execute(
        "insert into public.quota_overrides (user_id, gpu_seconds_per_month) values (%s, 100) "
        "on conflict (user_id) do update set gpu_seconds_per_month = 100",
        (alice.id,),
    )
    job_id = _job(repo, alice.id, "toy budget")
    charged: list[float] = []

    def phases(run: JobRun, job) -> None:
        _ran_for(sql, job_id, 60)
        run.phase("train", step=1)
        charged.append(repo.get_job("training", alice.id, job_id).gpu_seconds)
        _ran_for(sql, job_id, 50)
        run.phase("train", step=2)  # over the budget: JobCanceled

    run = ToyRun(services, job_id, phases)
    assert run.run() == "failed"
    assert 59 < charged[0] < 70
    job = repo.get_job("training", alice.id, job_id)
    assert (job.status, job.error_code) == ("failed", "GPU_BUDGET_EXHAUSTED")
    assert job.gpu_seconds > 109
    assert run.seen is not None and not run.seen.exists()
    assert (run.work / "G_1.pth").exists(), "kept for a retry within the grace period"
    run.work.joinpath("G_1.pth").unlink()
    run.work.rmdir()


def test_a_newer_attempt_takes_over_and_the_older_stops_quietly(services, repo, alice):
    job_id = _job(repo, alice.id, "toy stale")

    def phases(run: JobRun, job) -> None:
        ToyRun(services, job_id, phases).heartbeat.claim()  # a retried worker claims it
        with pytest.raises(JobCanceled):
            _finish(run, job)
        raise JobCanceled

    run = ToyRun(services, job_id, phases)
    assert run.run() == "canceled"
    assert run.heartbeat.stop_code == "STALE_ATTEMPT"
    assert repo.get_job("training", alice.id, job_id).status == "running", "the newer one's"
    assert (run.work / "G_1.pth").exists(), "the dir is the newer attempt's"
    run.work.joinpath("G_1.pth").unlink()
    run.work.rmdir()


def test_a_conversion_erased_while_it_runs_ends_failed_instead_of_raising(services, repo, alice):
    """Every kind now takes the training's way with an erasure while it runs: the fail that
    finds no row is the end of the job, not an error out of the worker (which Modal would
    log as a crash and the local CLI exit on with a traceback)."""
    from gpu.conversion.job import ConversionRun

    voice = trained_profile(repo, alice.id, "toy erased")
    job_id = new_conversion(repo, alice.id, voice["profile_id"])
    repo.queue_conversion(job_id)
    run = ConversionRun(services.worker_repo, services.storage, services.settings, None, job_id)
    send = run.heartbeat.send

    def erase_first(progress):
        response = alice.client.request("DELETE", "/me", json={"confirm": "erase my data"})
        assert response.status_code == 200, response.text
        run.heartbeat.send = send
        return send(progress)

    run.heartbeat.send = erase_first
    assert run.run() == "failed"


def test_progress_beats_at_most_once_per_period_and_always_at_the_end(services, repo, alice):
    """A separator or mixer calls `progress` per chunk: the first call and the last reach
    the row, the ones between wait for the period (the separation's `VC_HEARTBEAT_SECONDS`)."""
    job_id = _job(repo, alice.id, "toy progress")
    shown: list[float | None] = []

    def phases(run: JobRun, job) -> None:
        progress = run.progress("train", every=3600)
        for done in (0.25, 0.5, 1.0):
            assert progress(done) is True
            shown.append(repo.get_job("training", alice.id, job_id).progress.percent)
        _finish(run, job)

    assert ToyRun(services, job_id, phases).run() == "succeeded"
    assert shown == [25.0, 25.0, 100.0]
