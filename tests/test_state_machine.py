"""Job transitions are enforced in SQL: illegal ones refused, terminal states final, repeats
are no-ops that return the current row."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from pipeline import keys
from pipeline.errors import PipelineError
from tests.helpers import new_conversion, ready_dataset, trained_profile


def _code(fn) -> str:
    with pytest.raises(PipelineError) as caught:
        fn()
    return caught.value.code


@pytest.fixture
def training(repo, alice):
    profile = repo.create_profile(alice.id, "sm")
    ready_dataset(repo, alice.id, profile.id, 240)
    return profile, repo.start_training(alice.id, profile.id, {"preset": "tiny"})


def _finish(repo, user_id, profile_id, job_id, version=None):
    version = version or uuid4()
    return repo.finish_training(
        job_id,
        version,
        keys.model_key(user_id, profile_id, version),
        keys.model_config_key(user_id, profile_id, version),
        10,
        {},
    )


def test_training_lifecycle(repo, sql, alice, training) -> None:
    profile, job = training
    assert job.status == "queued"
    assert _code(lambda: _finish(repo, alice.id, profile.id, job.id)) == "INVALID_TRANSITION"
    assert _code(lambda: repo.heartbeat_job("training", job.id, {})) == "INVALID_TRANSITION"

    claimed = repo.claim_job("training", job.id)
    assert (claimed.status, claimed.attempt) == ("running", 1)
    resumed = repo.claim_job("training", job.id)
    assert (resumed.status, resumed.attempt) == ("running", 2)
    beat = repo.heartbeat_job("training", job.id, {"phase": "train", "step": 5})
    assert beat.progress.step == 5

    done = _finish(repo, alice.id, profile.id, job.id)
    assert done.status == "succeeded"
    assert done.quota_state == "charged"
    # Every later call changes nothing.
    for again in (
        lambda: _finish(repo, alice.id, profile.id, job.id),
        lambda: repo.fail_job("training", job.id, "X", "late failure"),
        lambda: repo.cancel_job("training", alice.id, job.id),
        lambda: repo.claim_job("training", job.id),
        lambda: repo.heartbeat_job("training", job.id, {"phase": "late"}),
    ):
        assert again().status == "succeeded"
    versions = sql.execute(
        "select count(*) from public.model_versions where training_job_id = %s", (job.id,)
    ).fetchone()[0]
    assert versions == 1
    detail = repo.get_profile(alice.id, profile.id)
    assert detail.status == "ready"
    assert detail.active_model is not None
    assert repo.quota_status(alice.id).training.used == 1


def test_model_keys_must_belong_to_the_job(repo, alice, bob, training) -> None:
    profile, job = training
    repo.claim_job("training", job.id)
    code = _code(lambda: _finish(repo, bob.id, profile.id, job.id))
    assert code == "INVALID_ARGUMENT"


def test_canceled_training_is_final_and_refunded(repo, alice, bob, training) -> None:
    _, job = training
    assert _code(lambda: repo.cancel_job("training", bob.id, job.id)) == "NOT_FOUND"
    canceled = repo.cancel_job("training", alice.id, job.id)
    assert canceled.status == "canceled"
    assert canceled.quota_state == "refunded"
    assert repo.claim_job("training", job.id).status == "canceled"
    assert repo.fail_job("training", job.id, "X", "y").status == "canceled"
    assert repo.quota_status(alice.id).training.used == 0


def test_conversion_lifecycle(repo, alice) -> None:
    made = trained_profile(repo, alice.id)
    job_id = uuid4()
    job = repo.create_conversion(
        alice.id,
        made["profile_id"],
        job_id,
        model_version_id=None,
        params={"transpose": 12},
        input_key=keys.conversion_input_key(alice.id, made["profile_id"], job_id, "wav"),
        input_filename="in.wav",
        input_size_bytes=100,
        upload_expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )
    assert job.status == "awaiting_upload"
    assert job.model_version_id == made["model_version_id"]
    assert _code(lambda: repo.claim_job("conversion", job_id)) == "INVALID_TRANSITION"
    out = keys.conversion_output_key(alice.id, made["profile_id"], job_id)
    assert _code(lambda: repo.finish_conversion(job_id, out, 1.0)) == "INVALID_TRANSITION"
    assert repo.queue_conversion(job_id).status == "queued"
    assert repo.queue_conversion(job_id).status == "queued"
    assert repo.claim_job("conversion", job_id).status == "running"
    assert repo.queue_conversion(job_id).status == "running"
    wrong = keys.conversion_output_key(alice.id, made["profile_id"], uuid4())
    assert _code(lambda: repo.finish_conversion(job_id, wrong, 1.0)) == "INVALID_ARGUMENT"
    done = repo.finish_conversion(job_id, out, 3.5)
    assert (done.status, done.quota_state) == ("succeeded", "charged")
    assert repo.cancel_job("conversion", alice.id, job_id).status == "succeeded"


def test_conversion_needs_a_model(repo, alice) -> None:
    profile = repo.create_profile(alice.id, "untrained")
    job_id = uuid4()
    code = _code(
        lambda: repo.create_conversion(
            alice.id,
            profile.id,
            job_id,
            model_version_id=None,
            params={},
            input_key=keys.conversion_input_key(alice.id, profile.id, job_id, "wav"),
            input_filename="in.wav",
            input_size_bytes=100,
            upload_expires_at=datetime.now(UTC),
        )
    )
    assert code == "NO_MODEL"
    assert repo.quota_status(alice.id).conversion.used == 0


def test_reaper_fails_silent_workers_and_expires_uploads(repo, sql, alice) -> None:
    made = trained_profile(repo, alice.id, "for conversion")
    job = repo.start_training(alice.id, made["profile_id"], {})
    repo.claim_job("training", job.id)
    sql.execute(
        "update public.training_jobs set heartbeat_at = now() - interval '2 hours' where id = %s",
        (job.id,),
    )
    conv_id = new_conversion(repo, alice.id, made["profile_id"], expires_in=-1)
    reaped = {r["id"]: r for r in repo.reap_stale_jobs()}
    assert reaped[str(job.id)]["error_code"] == "WORKER_LOST"
    assert reaped[str(conv_id)]["status"] == "canceled"
    quota = repo.quota_status(alice.id)
    assert quota.training.used == 1  # the reaped one refunded; the trained profile's charged
    assert quota.conversion.used == 0
    assert repo.reap_stale_jobs() == []


def test_event_ids_are_recorded_once(repo) -> None:
    event = str(uuid4())
    assert repo.record_event("r2", event) is True
    assert repo.record_event("r2", event) is False


def test_probe_verdict_is_recorded_once_and_total_is_capped(repo, alice) -> None:
    profile = repo.create_profile(alice.id, "probe")
    ids = []
    for _ in range(3):
        file_id = uuid4()
        key = keys.dataset_key(alice.id, profile.id, file_id, "a.wav")
        repo.register_upload(alice.id, profile.id, file_id, key, "a.wav", "audio/wav", 10)
        ids.append(file_id)
    first = repo.record_probe(ids[0], etag="a", size_bytes=10, probe={"duration_sec": 350})
    again = repo.record_probe(
        ids[0], etag="a", size_bytes=10, probe={}, reject_code="X", reject_message="no"
    )
    assert first.status == again.status == "ready"
    assert (
        repo.record_probe(ids[1], etag="b", size_bytes=10, probe={"duration_sec": 350}).status
        == "ready"
    )
    over = repo.record_probe(ids[2], etag="c", size_bytes=10, probe={"duration_sec": 30})
    assert (over.status, over.reject_code) == ("rejected", "DATASET_FULL")


def test_an_old_attempt_is_fenced_out_by_a_retried_claim(repo, sql, alice, training) -> None:
    """Two workers on one job (a retry while the first still runs) were accepted and charged
    as one. Each report carries the attempt its claim returned; once a newer attempt claims
    the job, the older one's heartbeat, finish and failure get STALE_ATTEMPT, which the
    worker's `Heartbeat` turns into a quiet stop, and the newer attempt goes on."""
    from gpu.errors import STALE_ATTEMPT, Heartbeat, JobCanceled

    profile, job = training
    old, new = Heartbeat(repo, "training", job.id), Heartbeat(repo, "training", job.id)
    assert old.claim().attempt == 1
    assert new.claim().attempt == 2
    code = _code(lambda: repo.heartbeat_job("training", job.id, {}, attempt=1))
    assert code == STALE_ATTEMPT
    assert old.send({"phase": "train", "step": 3}) is False
    assert old.stop_code == STALE_ATTEMPT
    with pytest.raises(JobCanceled), old.fenced():
        _finish_as(repo, alice.id, profile.id, job.id, attempt=1)
    old.fail("INTERNAL", "the old worker crashed")
    assert new.send({"phase": "train", "step": 4}) is True
    row = repo.get_job_row("training", alice.id, job.id)
    assert (row.status, row.attempt, row.progress.step) == ("running", 2, 4)
    assert _finish_as(repo, alice.id, profile.id, job.id, attempt=2).status == "succeeded"


def test_an_attempt_on_a_job_queued_again_is_stale(repo, sql, alice, training) -> None:
    """A requeued job keeps its attempt count until the next claim: the attempt that ran
    before may not heartbeat it back into an invalid transition or fail it."""
    _, job = training
    first = repo.claim_job("training", job.id)
    repo.fail_job("training", job.id, "INTERNAL", "boom", attempt=first.attempt)
    sql.execute("select ops.requeue_job('training', %s, 'test')", (job.id,))
    code = _code(lambda: repo.fail_job("training", job.id, "X", "late", attempt=first.attempt))
    assert code == "STALE_ATTEMPT"
    assert repo.get_job_row("training", alice.id, job.id).status == "queued"


def _finish_as(repo, user_id, profile_id, job_id, *, attempt):
    version = uuid4()
    return repo.finish_training(
        job_id,
        version,
        keys.model_key(user_id, profile_id, version),
        keys.model_config_key(user_id, profile_id, version),
        10,
        {},
        attempt,
    )
