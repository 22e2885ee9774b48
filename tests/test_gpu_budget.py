"""The GPU budget: every running second is charged from heartbeats whatever the job's outcome,
a spent budget refuses new jobs and stops a running one at its next heartbeat (the training
keeping its checkpoints), `/quota` shows it, and presets cap the steps a client may ask for."""

import time
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest

from gpu.errors import Heartbeat, JobCanceled
from gpu.training.presets import PRESETS
from pipeline import cron, keys
from pipeline.errors import PipelineError
from pipeline.repository import Repository
from tests.helpers import new_conversion, ready_dataset, trained_profile


def _override(sql: psycopg.Connection, user_id: UUID, seconds: int) -> None:
    sql.execute(
        "insert into public.quota_overrides (user_id, gpu_seconds_per_month) values (%s, %s) "
        "on conflict (user_id) do update "
        "set gpu_seconds_per_month = excluded.gpu_seconds_per_month",
        (user_id, seconds),
    )


def _ran_for(sql: psycopg.Connection, job_id: UUID, seconds: float) -> None:
    """As if the worker's last heartbeat was `seconds` ago."""
    sql.execute(
        "update public.training_jobs set heartbeat_at = now() - make_interval(secs => %s) "
        "where id = %s",
        (seconds, job_id),
    )


def _running_job(repo: Repository, user_id: UUID, name: str) -> UUID:
    profile = repo.create_profile(user_id, name)
    ready_dataset(repo, user_id, profile.id, 200)
    job = repo.start_training(user_id, profile.id, {"preset": "tiny"})
    repo.claim_job("training", job.id)
    return job.id


def test_heartbeats_charge_and_a_spent_budget_stops_the_job(repo, sql, alice) -> None:
    _override(sql, alice.id, 100)
    job_id = _running_job(repo, alice.id, "budget")

    _ran_for(sql, job_id, 60)
    beat = repo.heartbeat_job("training", job_id, {"phase": "train", "step": 3})
    assert beat.status == "running"
    assert 59 < beat.gpu_seconds < 70
    gpu = repo.quota_status(alice.id).gpu
    assert gpu.limit_seconds == 100 and 30 < gpu.remaining_seconds < 41

    # The worker's next heartbeat learns the budget is gone, with a code it can show.
    _ran_for(sql, job_id, 50)
    heartbeat = Heartbeat(repo, "training", job_id)
    assert heartbeat.send({"phase": "train", "step": 9}) is False
    assert heartbeat.stop_code == "GPU_BUDGET_EXHAUSTED"
    job = repo.get_job("training", alice.id, job_id)
    assert (job.status, job.error_code) == ("failed", "GPU_BUDGET_EXHAUSTED")
    assert "GPU time" in job.error_message
    assert 109 < job.gpu_seconds < 125
    quota = repo.quota_status(alice.id)
    assert quota.training.used == 0, "the counted quota is refunded as before"
    assert quota.gpu.remaining_seconds == 0 and quota.gpu.used_seconds >= 109

    # Nothing new starts, over HTTP too, with the error body and a clear code.
    with pytest.raises(PipelineError) as refused:
        _running_job(repo, alice.id, "again")
    assert refused.value.code == "GPU_BUDGET_EXHAUSTED"
    profile = alice.client.post("/profiles", json={"name": "http"}).json()
    ready_dataset(repo, alice.id, UUID(profile["id"]), 200)
    response = alice.client.post(f"/profiles/{profile['id']}/trainings", json={"preset": "tiny"})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "GPU_BUDGET_EXHAUSTED"
    shown = alice.client.get("/quota").json()["gpu"]
    assert shown["limit_seconds"] == 100 and shown["remaining_seconds"] == 0


def test_canceled_and_failed_jobs_are_charged_reaped_ones_only_to_their_last_beat(
    repo, sql, alice, bob
) -> None:
    canceled = _running_job(repo, alice.id, "cancel")
    _ran_for(sql, canceled, 40)
    repo.cancel_job("training", alice.id, canceled)
    assert 39 < repo.get_job("training", alice.id, canceled).gpu_seconds < 50
    assert repo.quota_status(alice.id).training.used == 0

    failed = _running_job(repo, alice.id, "fail")
    _ran_for(sql, failed, 30)
    repo.fail_job("training", failed, "INTERNAL", "boom")
    assert 29 < repo.get_job("training", alice.id, failed).gpu_seconds < 40
    assert 68 < repo.quota_status(alice.id).gpu.used_seconds < 90

    reaped = _running_job(repo, bob.id, "reaped")
    _ran_for(sql, reaped, 3600)  # the worker vanished an hour ago: that hour is not charged
    quick = Repository(repo.db, repo.settings.model_copy(update={"heartbeat_timeout_seconds": 60}))
    assert any(r["id"] == str(reaped) for r in quick.reap_stale_jobs())
    assert repo.get_job("training", bob.id, reaped).gpu_seconds < 1
    assert repo.quota_status(bob.id).gpu.used_seconds < 1


def test_quota_shows_the_default_budget(alice, settings) -> None:
    gpu = alice.client.get("/quota").json()["gpu"]
    assert gpu["limit_seconds"] == settings.gpu_seconds_per_month
    assert gpu["used_seconds"] == 0 and gpu["remaining_seconds"] == settings.gpu_seconds_per_month
    assert gpu["resets_at"] > gpu["period_start"]


@pytest.mark.parametrize(
    "params",
    [
        {"preset": "standard", "max_steps": 200_000},
        {"preset": "standard", "max_steps": 10_001},
        {"preset": "tiny", "max_steps": 5_000},
        {"preset": "tiny", "max_epochs": 500},
        {"preset": "standard", "max_epochs": 10_000},
    ],
)
def test_presets_cap_steps_and_epochs(alice, params) -> None:
    profile = alice.client.post("/profiles", json={"name": f"caps {params}"}).json()
    response = alice.client.post(f"/profiles/{profile['id']}/trainings", json=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_FAILED"


def test_stored_params_cannot_pass_the_preset_cap() -> None:
    """A job row from before the caps (or written by hand) still trains within them."""
    assert PRESETS["standard"].total_steps(600, 200_000) == 10_000
    assert PRESETS["standard"].total_steps(100_000, None) == 10_000
    assert PRESETS["tiny"].total_steps(60, 5_000) == 200


@pytest.mark.slow
def test_a_training_stops_at_its_next_heartbeat_when_the_budget_runs_out(
    repo, sql, alice, services, api_url, relay_secret_key, worker_env
) -> None:
    """The budget stop latency, measured: the operator lowers the budget below what was spent
    while the worker trains; the worker stops at its next heartbeat, keeping its checkpoint."""
    from tests.test_training import _has_checkpoint, _log_of, _profile_with_clips, _wait, _worker

    pid = UUID(_profile_with_clips(alice, services, api_url, relay_secret_key, "spent"))
    job = repo.start_training(alice.id, pid, {"preset": "tiny", "max_steps": 200})
    work = Path(services.settings.work_dir) / "training" / str(job.id) / "model"
    worker_env = worker_env | {"VC_CHECKPOINT_SECONDS": "0"}  # a resume checkpoint each epoch
    worker = _worker(worker_env, job.id)
    _wait(lambda: _has_checkpoint(work), 600, "a checkpoint")
    spent = repo.quota_status(alice.id).gpu.used_seconds
    _override(sql, alice.id, int(spent))
    lowered_at = time.monotonic()
    worker.wait(120)  # exits 1, as for any failed job
    latency = time.monotonic() - lowered_at
    stopped = repo.get_job("training", alice.id, job.id)
    assert (stopped.status, stopped.error_code) == ("failed", "GPU_BUDGET_EXHAUSTED"), _log_of(
        worker_env, job.id
    )
    overshoot = repo.quota_status(alice.id).gpu.used_seconds - int(spent)
    print(
        f"\nbudget stop: worker exited {latency:.2f} s after the budget ran out "
        f"(heartbeat every {services.settings.heartbeat_seconds:g} s); "
        f"charged {overshoot:.2f} s past the limit"
    )
    assert _has_checkpoint(work), (
        f"the training keeps its last checkpoint: {sorted(work.iterdir())}"
    )
    assert repo.list_model_versions(alice.id, pid) == []
    assert repo.quota_status(alice.id).training.used == 0


def _ran_for_kind(sql: psycopg.Connection, kind: str, job_id: UUID, seconds: float) -> None:
    sql.execute(
        f"update public.{kind}_jobs set heartbeat_at = now() - make_interval(secs => %s) "
        "where id = %s",
        (seconds, job_id),
    )


def test_every_finish_charges_the_time_since_the_last_heartbeat(repo, sql, alice) -> None:
    """The output upload and the tail of the quality report run after the last heartbeat:
    the finish charges them, as a failure or a cancel does."""
    made = trained_profile(repo, alice.id, "finishes")
    before = repo.quota_status(alice.id).gpu.used_seconds

    job = repo.start_training(alice.id, made["profile_id"], {"preset": "tiny"})
    repo.claim_job("training", job.id)
    _ran_for(sql, job.id, 40)
    version = uuid4()
    user, profile = alice.id, made["profile_id"]
    done = repo.finish_training(
        job.id,
        version,
        keys.model_key(user, profile, version),
        keys.model_config_key(user, profile, version),
        10,
        {},
    )
    assert done.status == "succeeded"
    assert 39 < done.gpu_seconds < 50

    conversion = new_conversion(repo, alice.id, profile)
    repo.queue_conversion(conversion)
    repo.claim_job("conversion", conversion)
    _ran_for_kind(sql, "conversion", conversion, 30)
    output = keys.conversion_output_key(alice.id, profile, conversion)
    finished = repo.finish_conversion(conversion, output, 3.0)
    assert finished.status == "succeeded"
    assert 29 < finished.gpu_seconds < 40
    assert 68 < repo.quota_status(alice.id).gpu.used_seconds - before < 90


def test_a_reaped_worker_still_running_is_charged_when_it_reports(repo, sql, alice) -> None:
    """The reaper cannot tell a dead worker from a silent one, so it charges nothing past the
    last heartbeat (and refunds the quota: our machinery failed the job). A worker that
    reports after all was running the whole time: that report charges the silent stretch
    once, and tells the worker to stop."""
    job_id = _running_job(repo, alice.id, "silent")
    _ran_for(sql, job_id, 700)  # a feature extraction longer than the heartbeat timeout
    quick = Repository(repo.db, repo.settings.model_copy(update={"heartbeat_timeout_seconds": 600}))
    assert any(r["id"] == str(job_id) for r in quick.reap_stale_jobs())
    reaped = repo.get_job("training", alice.id, job_id)
    assert (reaped.status, reaped.error_code) == ("failed", "WORKER_LOST")
    assert reaped.gpu_seconds < 1
    assert repo.quota_status(alice.id).training.used == 0

    heartbeat = Heartbeat(repo, "training", job_id)
    assert heartbeat.send({"phase": "train", "step": 1}) is False
    assert heartbeat.stop_code == "WORKER_LOST"
    charged = repo.get_job("training", alice.id, job_id).gpu_seconds
    assert 699 < charged < 720
    assert heartbeat.send({"phase": "train", "step": 2}) is False
    assert repo.get_job("training", alice.id, job_id).gpu_seconds - charged < 5, "charged once"
    assert 699 < repo.quota_status(alice.id).gpu.used_seconds < 725
    assert repo.quota_status(alice.id).training.used == 0, "the quota stays refunded"


def test_the_worker_cannot_choose_or_disable_the_budget(repo, sql, stack, bob) -> None:
    """The default budget is the server's: a worker sending none (which once disabled it)
    is refused, and the heartbeat applies the default the service published."""
    job_id = _running_job(repo, bob.id, "no limit")
    _ran_for(sql, job_id, repo.settings.gpu_seconds_per_month + 600)  # past the default
    with psycopg.connect(stack.worker_database_url, autocommit=True) as worker:
        try:
            row = worker.execute(
                "select public.heartbeat_job(p_kind => 'training', p_job_id => %s, "
                "p_progress => '{}'::jsonb, p_gpu_seconds_per_month => null)",
                (job_id,),
            ).fetchone()[0]
        except psycopg.errors.UndefinedFunction:
            row = None
    assert row is None, "the heartbeat takes no budget from the worker"
    assert Heartbeat(repo, "training", job_id).send({"phase": "train"}) is False
    job = repo.get_job("training", bob.id, job_id)
    assert (job.status, job.error_code) == ("failed", "GPU_BUDGET_EXHAUSTED")


def test_the_heartbeat_applies_the_default_the_service_published(repo, sql, services, bob) -> None:
    """The reaper's tick publishes the service's default; a user without an override is
    stopped by it, whatever the worker's own settings say."""
    low = Repository(repo.db, repo.settings.model_copy(update={"gpu_seconds_per_month": 100}))
    job_id = _running_job(repo, bob.id, "published")
    try:
        low.publish_gpu_budget()
        _ran_for(sql, job_id, 150)
        heartbeat = Heartbeat(repo, "training", job_id)  # a worker whose settings say 8 hours
        assert heartbeat.send({"phase": "train"}) is False
        assert heartbeat.stop_code == "GPU_BUDGET_EXHAUSTED"
    finally:
        cron.reap(services)  # publishes the service's own default again
    stored = sql.execute("select seconds_per_month from svc_private.gpu_budget").fetchone()
    assert stored == (services.settings.gpu_seconds_per_month,)


def test_a_step_that_reports_nothing_is_kept_alive(repo, sql, alice) -> None:
    """Feature extraction or a long input's pitch range report no progress: the worker's
    keep-alive beats for them, so the reaper does not take the worker for a dead one (which
    failed the job as WORKER_LOST on every retry alike), the time is charged as it runs, and
    a cancel meanwhile stops the worker once the step returns."""
    job_id = _running_job(repo, alice.id, "kept alive")
    heartbeat = Heartbeat(repo, "training", job_id)
    heartbeat.attempt = 1
    quick = Repository(repo.db, repo.settings.model_copy(update={"heartbeat_timeout_seconds": 3}))
    with heartbeat.kept_alive(0.3):
        time.sleep(5)  # longer than the heartbeat timeout, reporting nothing itself
        assert all(r["id"] != str(job_id) for r in quick.reap_stale_jobs())
    job = repo.get_job("training", alice.id, job_id)
    assert job.status == "running"
    assert job.gpu_seconds > 4

    with pytest.raises(JobCanceled), heartbeat.kept_alive(0.3):
        repo.cancel_job("training", alice.id, job_id)
        time.sleep(1)
    assert heartbeat.stop_code == "CANCELED"
