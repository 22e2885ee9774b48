"""Datasets from full mixes, on the real database and object store: a song uploaded as a full
mix is probed, separated once however often its events come, and its vocal becomes a dataset
file of its own that is probed like any upload and trains while the song never does; cancel,
a spent GPU budget, a lost launch and deletes behave as for the other jobs.

The separator here is an oracle double (the test built the song, so it knows the stems);
tests/test_separation_demucs.py runs the same worker with the tiny real HTDemucs."""

import io
from collections.abc import Callable
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import numpy as np
import psycopg
import pytest
import soundfile as sf

from gpu.errors import JobCanceled
from gpu.separation.job import SeparationRun
from pipeline import keys
from pipeline.cron import launch_requeued
from pipeline.probe import probe_dataset_file
from pipeline.services import Services
from tests.audio import encode, voice
from tests.events_helpers import deliver, r2_event
from tests.helpers import ready_dataset

RATE = 44100
SECONDS = 24.0  # past the test settings' 20 s training minimum


def song(seconds: float = SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """A stereo vocal line over struck chords with a kick on each beat: (vocal, music)."""
    vocal = voice(seconds, rate=RATE, channels=2, level=0.25)
    n = vocal.shape[0]
    t = np.arange(n) / RATE
    chords = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8)) / 3
    beat = t % 0.5
    kick = np.sin(2 * np.pi * 55 * beat) * np.exp(-beat * 18)
    music = (0.12 * chords * np.exp(-3 * (t % 2.0)) + 0.2 * kick).astype(np.float32)
    return vocal, np.repeat(music[:, None], 2, axis=1)


class Recorder:
    """Stands in for the GPU dispatcher: records the spawns and stop signals."""

    def __init__(self) -> None:
        self.spawned: list[tuple[str, UUID]] = []
        self.canceled: list[str] = []

    def spawn(self, kind: str, target_id: UUID) -> str:
        self.spawned.append((kind, target_id))
        return f"recorded-{len(self.spawned)}"

    def cancel(self, call_id: str) -> None:
        self.canceled.append(call_id)


@pytest.fixture
def gpu(services: Services, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setitem(services.dispatcher.routes, "separate", recorder)  # type: ignore[attr-defined]
    return recorder


Separator = Callable[..., None]


def oracle(vocal: np.ndarray, music: np.ndarray, during: Callable[[], None] = lambda: None):
    """A separator that knows the stems: checks it was handed the uploaded mix, reports
    progress as the real one does (stopping when told to) and writes the known stems."""

    def separate(source: Path, vocals: Path, instrumental: Path, *, cache_dir, device, progress):
        info = sf.info(str(source))
        assert (info.samplerate, info.channels) == (RATE, 2)
        assert abs(info.frames - vocal.shape[0]) < 2
        for fraction in (0.25, 0.5, 1.0):
            during()
            if not progress(fraction):
                raise JobCanceled
        sf.write(str(vocals), vocal, RATE, subtype="FLOAT")
        sf.write(str(instrumental), music, RATE, subtype="FLOAT")

    return separate


def upload_mix(alice, services: Services, profile_id: str, data: bytes) -> dict:
    ticket = alice.client.post(
        f"/profiles/{profile_id}/dataset/uploads",
        json={
            "filename": "My Song.wav",
            "content_type": "audio/wav",
            "size_bytes": len(data),
            "full_mix": True,
        },
    )
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    put = httpx.put(body["upload_url"], content=data, headers=body["headers"], timeout=30)
    assert put.status_code == 200, put.text
    return body


def notify(services: Services, api_url: str, secret_key: str, key: str) -> dict:
    """R2's object-create notification for `key`, pushed as the relay does."""
    info = services.storage.head(key)
    assert info is not None
    event = r2_event(services.settings.s3_bucket, key, info.etag, info.size)
    response = deliver(api_url, secret_key, event)
    assert response.status_code == 200, response.text
    return response.json()


def separation_rows(sql: psycopg.Connection, file_id: UUID) -> list[tuple]:
    return sql.execute(
        "select id, status from public.separation_jobs where source_file_id = %s", (file_id,)
    ).fetchall()


def run_worker(services: Services, job_id: UUID, separator: Separator) -> str:
    worker = services.worker_repo  # the worker login, as in a container
    return SeparationRun(
        worker, services.storage, services.settings, job_id, separator=separator, device="cpu"
    ).run()


def test_a_full_mix_is_separated_once_and_its_vocal_trains(
    services, repo, sql, alice, gpu, api_url, relay_secret_key
) -> None:
    vocal, music = song()
    mix_bytes = encode(vocal + music, RATE, "wav")
    profile = alice.client.post("/profiles", json={"name": "songs"}).json()
    ticket = upload_mix(alice, services, profile["id"], mix_bytes)
    mix_id = UUID(ticket["file_id"])

    # The upload's event probes the mix as any upload; being ready, it is separated.
    notify(services, api_url, relay_secret_key, ticket["object_key"])
    mix = repo.get_dataset_file(mix_id)
    assert (mix.status, mix.full_mix, mix.derived_from) == ("ready", True, None)
    assert abs(mix.duration_sec - SECONDS) < 0.1
    [(job_id, status)] = separation_rows(sql, mix_id)
    assert status == "queued"
    assert gpu.spawned == [("separate", job_id)]

    # Every further delivery (a redelivered event, the reconciler, a retried probe) finds
    # the job taken: still one job, launched once.
    notify(services, api_url, relay_secret_key, ticket["object_key"])
    services.runners()["probe"](mix_id)
    assert repo.take_separation(mix_id).taken is False
    assert separation_rows(sql, mix_id) == [(job_id, "queued")]
    assert gpu.spawned == [("separate", job_id)]
    shown = alice.client.get(f"/separations/{job_id}").json()
    assert (shown["status"], shown["source_file_id"]) == ("queued", str(mix_id))
    assert shown["progress"]["phase"] == "queued"

    # The song itself counts for nothing: no minutes, no training.
    summary = alice.client.get(f"/profiles/{profile['id']}").json()["dataset"]
    assert (summary["ready_files"], summary["ready_seconds"]) == (0, 0)
    assert summary["full_mix_files"] == 1
    refused = alice.client.post(f"/profiles/{profile['id']}/trainings", json={"preset": "tiny"})
    assert refused.json()["error"]["code"] == "DATASET_TOO_SHORT"

    # The worker separates it; its vocal is registered before its upload, derived from the mix.
    assert run_worker(services, job_id, oracle(vocal, music)) == "succeeded"
    job = alice.client.get(f"/separations/{job_id}").json()
    assert (job["status"], job["progress"]["percent"]) == ("succeeded", 100)
    derived = repo.get_dataset_file(UUID(job["derived_file_id"]))
    assert (derived.status, derived.derived_from, derived.full_mix) == ("pending", mix_id, False)
    assert derived.filename == "My Song (vocals).wav"
    assert derived.object_key == keys.separated_vocal_key(
        alice.id, UUID(profile["id"]), derived.id, "My Song.wav"
    )

    # Its own upload event probes it like any upload (no separation of its own).
    notify(services, api_url, relay_secret_key, derived.object_key)
    derived = repo.get_dataset_file(derived.id)
    assert derived.status == "ready", (derived.reject_code, derived.reject_message)
    assert (derived.sample_rate, derived.channels) == (RATE, 2)
    assert abs(derived.duration_sec - SECONDS) < 0.1
    assert derived.voice_ratio is not None and derived.noise_level is not None
    assert len(separation_rows(sql, derived.id)) == 0
    assert gpu.spawned == [("separate", job_id)]

    # Both are listed and both play; the vocal is what trains, never the song.
    files = alice.client.get(f"/profiles/{profile['id']}/dataset/files").json()
    assert {(f["id"], f["full_mix"], f["derived_from"]) for f in files} == {
        (str(mix_id), True, None),
        (str(derived.id), False, str(mix_id)),
    }
    for file_id in (mix_id, derived.id):
        link = alice.client.get(f"/profiles/{profile['id']}/dataset/files/{file_id}/download")
        assert link.status_code == 200, link.text
        assert httpx.get(link.json()["url"], timeout=30).status_code == 200
    link = alice.client.get(f"/profiles/{profile['id']}/dataset/files/{derived.id}/download")
    played = httpx.get(link.json()["url"], timeout=30).content
    assert sf.info(io.BytesIO(played)).subtype == "PCM_16"
    training = repo.start_training(alice.id, UUID(profile["id"]), {"preset": "tiny"})
    assert [i.id for i in repo.training_inputs(training.id)] == [derived.id]
    repo.cancel_job("training", alice.id, training.id)

    # Deleting the song deletes its vocal too (retention then removes both objects).
    gone = alice.client.delete(f"/profiles/{profile['id']}/dataset/files/{mix_id}")
    assert gone.status_code == 200
    assert repo.get_dataset_file(derived.id).status == "deleted"
    assert alice.client.get(f"/profiles/{profile['id']}/dataset/files").json() == []


def test_bob_cannot_see_or_cancel_alices_separation(services, repo, sql, alice, bob, gpu) -> None:
    profile = repo.create_profile(alice.id, "private song")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    assert bob.client.get(f"/separations/{job_id}").status_code == 404
    assert bob.client.post(f"/separations/{job_id}/cancel").status_code == 404
    link = bob.client.get(f"/profiles/{profile.id}/dataset/files/{mix_id}/download")
    assert link.status_code == 404
    assert repo.get_job("separation", alice.id, job_id).status == "queued"


def put_mix(repo, services: Services, user_id: UUID, profile_id: UUID, data: bytes) -> UUID:
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, "song.wav")
    repo.register_upload(
        user_id, profile_id, file_id, key, "song.wav", "audio/wav", len(data), full_mix=True
    )
    services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=data)
    return file_id


def test_cancel_stops_the_worker_and_derives_nothing(services, repo, sql, alice, gpu) -> None:
    vocal, music = song(6.0)
    profile = repo.create_profile(alice.id, "cancel song")
    mix_id = put_mix(repo, services, alice.id, profile.id, encode(vocal + music, RATE, "wav"))
    services.runners()["probe"](mix_id)
    [(job_id, _)] = separation_rows(sql, mix_id)

    canceled = []

    def cancel_once() -> None:
        if not canceled:
            canceled.append(alice.client.post(f"/separations/{job_id}/cancel").json())

    assert run_worker(services, job_id, oracle(vocal, music, during=cancel_once)) == "canceled"
    assert canceled[0]["status"] == "canceled"
    assert gpu.canceled == ["recorded-1"]  # the worker was signalled too
    job = repo.get_job("separation", alice.id, job_id)
    assert (job.status, job.error_code, job.progress.phase) == ("canceled", "CANCELED", "canceled")
    assert repo.get_dataset_file(job.derived_file_id) is None  # nothing derived
    assert repo.get_dataset_file(mix_id).status == "ready"  # the song stays, never trains
    # A repeated cancel and a late worker change nothing.
    assert alice.client.post(f"/separations/{job_id}/cancel").json()["status"] == "canceled"
    assert run_worker(services, job_id, oracle(vocal, music)) == "canceled"
    assert repo.get_dataset_file(job.derived_file_id) is None


def test_a_vocal_registered_before_a_cancel_is_dropped_with_it(services, repo, sql, alice) -> None:
    profile = repo.create_profile(alice.id, "late cancel")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    job = repo.claim_job("separation", job_id)
    key = keys.separated_vocal_key(alice.id, profile.id, job.derived_file_id, "take.wav")
    vocal = repo.register_separated_vocal(job_id, key, "take (vocals).wav", 1000)
    assert vocal is not None and vocal.status == "pending"
    assert repo.register_separated_vocal(job_id, key, "take (vocals).wav", 1000) == vocal
    repo.cancel_job("separation", alice.id, job_id)
    assert repo.get_dataset_file(vocal.id).status == "deleted"
    assert repo.register_separated_vocal(job_id, key, "take (vocals).wav", 1000) is None


def _budget(sql: psycopg.Connection, user_id: UUID, seconds: int) -> None:
    sql.execute(
        "insert into public.quota_overrides (user_id, gpu_seconds_per_month) values (%s, %s) "
        "on conflict (user_id) do update "
        "set gpu_seconds_per_month = excluded.gpu_seconds_per_month",
        (user_id, seconds),
    )


def test_a_spent_gpu_budget_refuses_and_stops_separations(services, repo, sql, alice, gpu) -> None:
    vocal, music = song(6.0)
    data = encode(vocal + music, RATE, "wav")

    # Spent before the mix is ready: the job is failed instead of launched.
    _budget(sql, alice.id, 0)
    profile = repo.create_profile(alice.id, "budget song")
    mix_id = put_mix(repo, services, alice.id, profile.id, data)
    services.runners()["probe"](mix_id)
    [(job_id, status)] = separation_rows(sql, mix_id)
    assert status == "failed"
    assert gpu.spawned == []
    job = repo.get_job("separation", alice.id, job_id)
    assert job.error_code == "GPU_BUDGET_EXHAUSTED" and "GPU time" in job.error_message
    assert repo.get_dataset_file(mix_id).status == "ready"

    # Running out mid-way: the next heartbeat stops the worker, as for training.
    _budget(sql, alice.id, 100)
    second = put_mix(repo, services, alice.id, profile.id, data)
    services.runners()["probe"](second)
    [(job_id, _)] = separation_rows(sql, second)
    assert gpu.spawned == [("separate", job_id)]

    def long_silence() -> None:  # as if the last heartbeat was 200 s ago
        sql.execute(
            "update public.separation_jobs set heartbeat_at = now() - interval '200 seconds' "
            "where id = %s",
            (job_id,),
        )

    assert run_worker(services, job_id, oracle(vocal, music, during=long_silence)) == "failed"
    job = repo.get_job("separation", alice.id, job_id)
    assert (job.status, job.error_code) == ("failed", "GPU_BUDGET_EXHAUSTED")
    assert job.gpu_seconds >= 100
    assert repo.get_dataset_file(job.derived_file_id) is None
    assert repo.quota_status(alice.id).gpu.remaining_seconds == 0


def test_a_lost_launch_is_launched_by_the_cron_and_a_silent_worker_is_reaped(
    services, repo, sql, alice, gpu
) -> None:
    profile = repo.create_profile(alice.id, "lost launch")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)  # no follow-up ran
    [(job_id, _)] = separation_rows(sql, mix_id)
    sql.execute(
        "update public.separation_jobs set queued_at = now() - interval '2 minutes' where id = %s",
        (job_id,),
    )
    assert str(job_id) in launch_requeued(services)
    assert ("separate", job_id) in gpu.spawned
    assert str(job_id) not in launch_requeued(services)
    assert repo.take_separation(mix_id).taken is False

    repo.claim_job("separation", job_id)
    timeout = services.settings.heartbeat_timeout_seconds
    sql.execute(
        "update public.separation_jobs set heartbeat_at = now() - make_interval(secs => %s) "
        "where id = %s",
        (timeout + 60, job_id),
    )
    reaped = repo.reap_stale_jobs()
    assert {"kind": "separation", "id": str(job_id), "status": "failed",
            "error_code": "WORKER_LOST"} in reaped  # fmt: skip
    in_flight = sql.execute(
        "select count(*) from ops.jobs_in_flight where id = %s", (job_id,)
    ).fetchone()
    assert in_flight == (0,)


def test_a_mix_deleted_while_separating_cancels_the_job(services, repo, sql, alice) -> None:
    profile = repo.create_profile(alice.id, "deleted song")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    repo.claim_job("separation", job_id)
    in_flight = sql.execute(
        "select kind, phase from ops.jobs_in_flight where id = %s", (job_id,)
    ).fetchone()
    assert in_flight == ("separation", "queued")
    repo.delete_dataset_file(alice.id, profile.id, mix_id)
    job = repo.get_job("separation", alice.id, job_id)
    assert (job.status, job.error_code) == ("canceled", "CANCELED")


def test_erasure_cancels_live_separations(services, repo, sql, alice) -> None:
    profile = repo.create_profile(alice.id, "erased song")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    repo.claim_job("separation", job_id)
    repo.set_job_call_id("separation", job_id, "local-1")
    erased = repo.erase_user_data(alice.id)
    assert (erased.jobs_canceled, erased.call_ids) == (1, ["local-1"])
    left = sql.execute("select count(*) from public.separation_jobs where id = %s", (job_id,))
    assert left.fetchone() == (0,)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_real_worker_separates_with_the_tiny_htdemucs(services, repo, sql, alice, worker_env):
    """The probe launches `python -m gpu separate` (a child process, as the local stack runs
    it) and the worker runs the tiny random HTDemucs through the production loader: its
    "vocal" is noise, but it is a dataset file of the song's length, rate and channels that
    the probe judges like any upload."""
    vocal, music = song(8.0)
    profile = repo.create_profile(alice.id, "real separator")
    mix_id = put_mix(repo, services, alice.id, profile.id, encode(vocal + music, RATE, "wav"))
    services.runners()["probe"](mix_id)
    [(job_id, _)] = separation_rows(sql, mix_id)
    call_id = repo.get_job_by_id("separation", job_id).worker_call_id
    assert call_id and call_id.startswith("local-")
    process = services.dispatcher.routes["separate"]._procs[call_id]  # type: ignore[attr-defined]
    assert process.wait(timeout=600) == 0
    job = repo.get_job("separation", alice.id, job_id)
    assert (job.status, job.progress.percent, job.attempt) == ("succeeded", 100, 1)
    assert job.gpu_seconds > 0
    derived = repo.get_dataset_file(job.derived_file_id)
    assert (derived.status, derived.derived_from) == ("pending", mix_id)
    services.runners()["probe"](derived.id)  # what its upload event does
    derived = repo.get_dataset_file(derived.id)
    assert derived.probed_at is not None and derived.status in {"ready", "rejected"}
    if derived.status == "ready":
        assert (derived.sample_rate, derived.channels) == (RATE, 2)
        assert abs(derived.duration_sec - 8.0) < 0.05


def test_operators_see_fail_and_requeue_a_separation(services, repo, sql, alice, gpu) -> None:
    profile = repo.create_profile(alice.id, "operated song")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    repo.claim_job("separation", job_id)
    sql.execute(
        "update public.separation_jobs set heartbeat_at = now() - interval '30 seconds' "
        "where id = %s",
        (job_id,),
    )
    failed = sql.execute(
        "select ops.fail_job('separation', %s, 'The worker is wedged.')", (job_id,)
    ).fetchone()[0]
    assert (failed["status"], failed["error_code"]) == ("failed", "OPERATOR_FAILED")
    usage = sql.execute(
        "select gpu_seconds_this_month from ops.usage_this_period where user_id = %s",
        (alice.id,),
    ).fetchone()
    assert usage[0] == 0  # an operator's stop is not billed for the silent time
    reasons = sql.execute(
        "select count(*) from ops.failures where source = 'separation' and code = 'OPERATOR_FAILED'"
    ).fetchone()
    assert reasons[0] >= 1
    requeued = sql.execute(
        "select ops.requeue_job('separation', %s, 'Worker fixed.')", (job_id,)
    ).fetchone()[0]
    assert (requeued["status"], requeued["quota_state"]) == ("queued", "free")
    assert str(job_id) in launch_requeued(services)
    assert ("separate", job_id) in gpu.spawned


def test_a_retried_worker_keeps_the_vocal_its_first_attempt_uploaded(
    services, repo, sql, alice, gpu
) -> None:
    vocal, music = song(6.0)
    profile = repo.create_profile(alice.id, "retried song")
    mix_id = put_mix(repo, services, alice.id, profile.id, encode(vocal + music, RATE, "wav"))
    services.runners()["probe"](mix_id)
    [(job_id, _)] = separation_rows(sql, mix_id)
    # The first attempt registered and uploaded its vocal, then its container died.
    job = repo.claim_job("separation", job_id)
    key = keys.separated_vocal_key(alice.id, profile.id, job.derived_file_id, "song.wav")
    first = encode(vocal, RATE, "wav", "PCM_16")
    repo.register_separated_vocal(job_id, key, "song (vocals).wav", len(first))
    services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=first)
    etag = services.storage.head(key).etag
    probe_dataset_file(repo, services.storage, job.derived_file_id)  # its event came
    assert repo.get_dataset_file(job.derived_file_id).etag == etag

    assert run_worker(services, job_id, oracle(0.9 * vocal, music)) == "succeeded"  # new bytes
    assert services.storage.head(key).etag == etag  # the probed (sealed) object is kept
    assert repo.get_job("separation", alice.id, job_id).attempt == 2


def test_deleting_the_voice_cancels_its_separations(services, repo, sql, alice) -> None:
    profile = repo.create_profile(alice.id, "deleted voice")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    repo.claim_job("separation", job_id)
    repo.delete_profile(alice.id, profile.id)
    job = repo.get_job("separation", alice.id, job_id)
    assert (job.status, job.error_code) == ("canceled", "CANCELED")


def test_try_again_after_a_cancel_separates_anew(services, repo, sql, alice, bob, gpu) -> None:
    vocal, music = song(6.0)
    profile = repo.create_profile(alice.id, "try again")
    mix_id = put_mix(repo, services, alice.id, profile.id, encode(vocal + music, RATE, "wav"))
    services.runners()["probe"](mix_id)
    [(job_id, _)] = separation_rows(sql, mix_id)
    # The first run got as far as registering its vocal, then was canceled: the vocal went.
    first = repo.claim_job("separation", job_id)
    key = keys.separated_vocal_key(alice.id, profile.id, first.derived_file_id, "song.wav")
    dropped = repo.register_separated_vocal(job_id, key, "song (vocals).wav", 1000)
    alice.client.post(f"/separations/{job_id}/cancel").raise_for_status()
    assert repo.get_dataset_file(dropped.id).status == "deleted"

    assert bob.client.post(f"/separations/{job_id}/retry").status_code == 404
    retried = alice.client.post(f"/separations/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert (body["status"], body["error_code"], body["progress"]["phase"]) == (
        "queued",
        None,
        "queued",
    )
    assert body["derived_file_id"] != str(first.derived_file_id)
    assert gpu.spawned == [("separate", job_id), ("separate", job_id)]
    again = alice.client.post(f"/separations/{job_id}/retry")  # in flight: left as it is
    assert again.json()["status"] == "queued" and len(gpu.spawned) == 2

    assert run_worker(services, job_id, oracle(vocal, music)) == "succeeded"
    derived = repo.get_dataset_file(UUID(body["derived_file_id"]))
    assert (derived.status, derived.derived_from) == ("pending", mix_id)
    services.runners()["probe"](derived.id)  # what its upload event does
    assert repo.get_dataset_file(derived.id).status == "ready"
    done = alice.client.post(f"/separations/{job_id}/retry")
    assert done.status_code == 409 and done.json()["error"]["code"] == "INVALID_TRANSITION"


def test_try_again_is_refused_while_the_gpu_budget_is_spent(services, repo, sql, alice, gpu):
    profile = repo.create_profile(alice.id, "no budget retry")
    mix_id = ready_dataset(repo, alice.id, profile.id, 30, full_mix=True)
    [(job_id, _)] = separation_rows(sql, mix_id)
    repo.cancel_job("separation", alice.id, job_id)
    _budget(sql, alice.id, 0)
    refused = alice.client.post(f"/separations/{job_id}/retry")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "GPU_BUDGET_EXHAUSTED"
    assert repo.get_job("separation", alice.id, job_id).status == "canceled"
    repo.delete_dataset_file(alice.id, profile.id, mix_id)
    _budget(sql, alice.id, 1000)
    gone = alice.client.post(f"/separations/{job_id}/retry")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "NOT_READY"


def test_a_retry_refuses_a_live_vocal_up_front_and_replaces_a_rejected_one(
    services, repo, sql, alice, gpu
) -> None:
    """A failed run whose vocal was already probed ready left that vocal in the dataset: a
    retry would run (and charge) the whole separation, then hit the one-live-vocal-per-mix
    index. It is refused at once instead. A vocal the probe rejected does not block: the
    retry drops it, even after a success, and the new run registers its own."""
    vocal, music = song(6.0)
    profile = repo.create_profile(alice.id, "vocal kept")
    mix_id = put_mix(repo, services, alice.id, profile.id, encode(vocal + music, RATE, "wav"))
    services.runners()["probe"](mix_id)
    [(job_id, _)] = separation_rows(sql, mix_id)
    job = repo.claim_job("separation", job_id)
    key = keys.separated_vocal_key(alice.id, profile.id, job.derived_file_id, "song.wav")
    repo.register_separated_vocal(job_id, key, "song (vocals).wav", 1000)
    probe = {"duration_sec": 6.0, "format": "wav"}
    repo.record_probe(job.derived_file_id, etag="e", size_bytes=1000, probe=probe)
    repo.fail_job("separation", job_id, "WORKER_LOST", "The worker stopped responding.")
    assert repo.get_dataset_file(job.derived_file_id).status == "ready"

    refused = alice.client.post(f"/separations/{job_id}/retry")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "INVALID_TRANSITION" and "already in the dataset" in error["message"]
    assert error["details"]["vocal_file_id"] == str(job.derived_file_id)
    assert repo.get_job("separation", alice.id, job_id).status == "failed"
    assert gpu.spawned == [("separate", job_id)]  # nothing ran again

    # The probe rejects the vocal: now the retry runs, and the new run's vocal registers.
    sql.execute(
        "update public.dataset_files set status = 'rejected', reject_code = 'TOO_QUIET' "
        "where id = %s",
        (job.derived_file_id,),
    )
    retried = alice.client.post(f"/separations/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    assert repo.get_dataset_file(job.derived_file_id).status == "deleted"
    assert run_worker(services, job_id, oracle(vocal, music)) == "succeeded"
    new_vocal = UUID(retried.json()["derived_file_id"])
    assert repo.get_dataset_file(new_vocal).status == "pending"

    # A success whose vocal the probe rejected can be tried again too.
    repo.record_probe(
        new_vocal, etag="e2", size_bytes=1000, probe=probe, reject_code="TOO_QUIET",
        reject_message="The vocal is too quiet.",
    )  # fmt: skip
    again = alice.client.post(f"/separations/{job_id}/retry")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "queued"
    assert repo.get_dataset_file(new_vocal).status == "deleted"
    assert run_worker(services, job_id, oracle(vocal, music)) == "succeeded"
