"""The job machine's lifecycle defects found from outside: a requeued or retried job waits
from its requeue (not its creation), every finish charges the GPU time since the last beat,
and one person's album cannot hold every separation GPU."""

from uuid import UUID, uuid4

import psycopg
import pytest

from pipeline import cron, keys
from pipeline.errors import PipelineError
from pipeline.services import Services
from tests.helpers import new_conversion, ready_dataset, trained_profile
from tests.test_separation import Recorder, separation_rows


@pytest.fixture
def gpu(services: Services, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    for kind in ("train", "convert", "separate"):
        monkeypatch.setitem(services.dispatcher.routes, kind, recorder)  # type: ignore[attr-defined]
    return recorder


def _age(sql: psycopg.Connection, table: str, job_id: UUID, hours: float) -> None:
    """As if the job had been created `hours` ago (and every timestamp with it)."""
    sql.execute(
        f"update public.{table} set created_at = now() - make_interval(hours => %s) where id = %s",
        (hours, job_id),
    )


def test_a_requeued_three_hour_old_training_starts(services, repo, sql, alice, gpu) -> None:
    profile = repo.create_profile(alice.id, "requeue old")
    ready_dataset(repo, alice.id, profile.id, 200)
    job = repo.start_training(alice.id, profile.id, {"preset": "tiny"})
    repo.claim_job("training", job.id)
    repo.fail_job("training", job.id, "TRAINER_CRASHED", "Out of memory.")
    _age(sql, "training_jobs", job.id, 3)
    sql.execute("select ops.requeue_job('training', %s, 'Memory raised.')", (job.id,))

    cron.reap(services)  # the next tick: reaps, then launches what was requeued

    row = repo.get_job("training", alice.id, job.id)
    assert (row.status, row.error_code) == ("queued", None), row
    assert ("train", job.id) in gpu.spawned


def test_a_retried_separation_of_an_old_song_is_not_reaped(services, repo, sql, alice, gpu) -> None:
    profile = repo.create_profile(alice.id, "retry old")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    repo.take_separation(mix_id)
    repo.claim_job("separation", job_id)
    repo.fail_job("separation", job_id, "SEPARATOR_UNAVAILABLE", "No GPU.")
    _age(sql, "separation_jobs", job_id, 3)

    retried = alice.client.post(f"/separations/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    cron.reap(services)
    row = repo.get_job("separation", alice.id, job_id)
    assert (row.status, row.error_code) == ("queued", None), row


def test_a_conversion_uploaded_late_in_its_window_is_measured_from_its_upload(
    services, repo, sql, alice
) -> None:
    voice = trained_profile(repo, alice.id, "late upload")
    job_id = new_conversion(repo, alice.id, voice["profile_id"])
    _age(sql, "conversion_jobs", job_id, 3)
    sql.execute(
        "update public.conversion_jobs set upload_expires_at = now() + interval '1 minute' "
        "where id = %s",
        (job_id,),
    )
    repo.queue_conversion(job_id)
    assert not any(r["id"] == str(job_id) for r in repo.reap_stale_jobs())
    assert repo.get_job("conversion", alice.id, job_id).status == "queued"


def _gpu_used(repo, user_id: UUID) -> float:
    return repo.quota_status(user_id).gpu.used_seconds


def _last_beat(sql: psycopg.Connection, table: str, job_id: UUID, seconds: float) -> None:
    sql.execute(
        f"update public.{table} set heartbeat_at = now() - make_interval(secs => %s) where id = %s",
        (seconds, job_id),
    )


def test_finishing_a_training_charges_the_time_since_the_last_heartbeat(repo, sql, alice) -> None:
    profile = repo.create_profile(alice.id, "finish charge")
    ready_dataset(repo, alice.id, profile.id, 200)
    job = repo.start_training(alice.id, profile.id, {"preset": "tiny"})
    repo.claim_job("training", job.id)
    repo.heartbeat_job("training", job.id, {"phase": "upload"})
    before = _gpu_used(repo, alice.id)
    _last_beat(sql, "training_jobs", job.id, 90)  # the upload and the report took 90 s

    version = uuid4()
    done = repo.finish_training(
        job.id,
        version,
        keys.model_key(alice.id, profile.id, version),
        keys.model_config_key(alice.id, profile.id, version),
        1234,
        {},
    )
    assert done.status == "succeeded"
    assert 89 < _gpu_used(repo, alice.id) - before < 100
    assert 89 < done.gpu_seconds < 100


def test_finishing_a_conversion_charges_the_time_since_the_last_heartbeat(repo, sql, alice) -> None:
    voice = trained_profile(repo, alice.id, "finish charge conversion")
    job_id = new_conversion(repo, alice.id, voice["profile_id"])
    repo.queue_conversion(job_id)
    repo.claim_job("conversion", job_id)
    before = _gpu_used(repo, alice.id)
    _last_beat(sql, "conversion_jobs", job_id, 45)

    output = keys.conversion_output_key(alice.id, voice["profile_id"], job_id)
    done = repo.finish_conversion(job_id, output, 12.0)
    assert done.status == "succeeded"
    assert 44 < _gpu_used(repo, alice.id) - before < 55


def test_one_person_holds_at_most_the_separation_limit(services, repo, sql, alice, bob, gpu):
    limit = services.settings.max_active_separations
    profile = repo.create_profile(alice.id, "album")
    mixes = [ready_dataset(repo, alice.id, profile.id, 30, full_mix=True) for _ in range(limit + 3)]
    taken = [repo.take_separation(m).taken for m in mixes]
    assert taken == [True] * limit + [False] * 3, "the rest wait in line"

    # Someone else's song is not held up by Alice's album.
    other = repo.create_profile(bob.id, "single")
    assert repo.take_separation(ready_dataset(repo, bob.id, other.id, 30, full_mix=True)).taken

    # Waiting in line is not being lost: hours later the reaper leaves them queued.
    for order, mix in enumerate(mixes[limit:]):
        [(job_id, _)] = separation_rows(sql, mix)
        sql.execute(
            "update public.separation_jobs set created_at = now() - interval '5 hours', "
            "queued_at = now() - interval '5 hours' + make_interval(secs => %s) where id = %s",
            (order, job_id),
        )
    reaped = {r["id"] for r in repo.reap_stale_jobs()}
    waiting = [separation_rows(sql, m)[0] for m in mixes[limit:]]
    assert all(status == "queued" and str(job_id) not in reaped for job_id, status in waiting)

    # One finishes (fails here): the cron launches the next in line, one slot's worth.
    [(first, _)] = separation_rows(sql, mixes[0])
    repo.claim_job("separation", first)
    repo.fail_job("separation", first, "SEPARATOR_UNAVAILABLE", "No GPU.")
    gpu.spawned.clear()
    launched = cron.launch_requeued(services)  # other tests' songs may be in line too
    assert str(waiting[0][0]) in launched, "the oldest in line takes the free slot"
    assert not {str(job_id) for job_id, _ in waiting[1:]} & set(launched)
    assert ("separate", waiting[0][0]) in gpu.spawned

    # Trying the failed one again while the slots are full is a 409, like the other kinds.
    retried = alice.client.post(f"/separations/{first}/retry")
    assert retried.status_code == 409, retried.text
    assert retried.json()["error"]["code"] == "SEPARATION_IN_PROGRESS"
    with pytest.raises(PipelineError) as refused:
        repo.retry_separation(alice.id, first)
    assert refused.value.code == "SEPARATION_IN_PROGRESS"
