"""Instant voice through the local stack: real Postgres, SeaweedFS, the API over HTTP, R2
events, and the worker's code with tiny random Seed-VC weights (`python -m gpu models
--offline`). The output of random weights is noise-like, so what is checked is what holds
whatever the weights: the flow, lengths and rates, refusals, quota, budget, cancel, erasure.
Speaker similarity on the real model cannot be measured offline; the quality report's fields
are checked for presence and range only.
"""

import io
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import numpy as np
import pytest
import soundfile as sf

from gpu.errors import JobCanceled
from pipeline import keys
from pipeline.errors import PipelineError
from pipeline.instant import InstantCalls, delete_voice, probe_reference
from pipeline.repository import Repository
from tests.audio import encode
from tests.events_helpers import deliver, r2_event
from tests.vocals import singing

RATE = 44100


def _put(ticket: dict, data: bytes) -> None:
    upload = ticket["upload"]
    response = httpx.put(upload["upload_url"], content=data, headers=upload["headers"])
    assert response.status_code == 200


def _event(services, api_url, relay_secret_key, key: str) -> str:
    info = services.storage.head(key)
    event = r2_event(services.settings.s3_bucket, key, info.etag, info.size)
    return deliver(api_url, relay_secret_key, event).json()["outcomes"][0]["outcome"]


def _voice(repo: Repository, storage, user_id: UUID, profile_id: UUID, seconds: float = 12.0):
    """A ready instant voice, made without HTTP (the HTTP path has its own test)."""
    voice_id = uuid4()
    key = keys.instant_reference_key(user_id, profile_id, voice_id, "wav")
    data = encode(singing(seconds, f0=330, seed=3), RATE, "wav", "PCM_16")
    InstantCalls(repo).create_voice(
        user_id=user_id, profile_id=profile_id, voice_id=voice_id, name="me",
        reference_key=key, filename="me.wav", size_bytes=len(data),
        consent_text="mine", upload_expires_at=datetime.now(UTC),
    )  # fmt: skip
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    return probe_reference(repo, storage, voice_id)


def _job(repo: Repository, storage, voice, samples: np.ndarray, **params):
    job_id = uuid4()
    key = keys.instant_input_key(voice.user_id, voice.profile_id, job_id, "wav")
    data = encode(samples, RATE, "wav", "PCM_16")
    row = InstantCalls(repo).create_job(
        user_id=voice.user_id, voice_id=voice.id, job_id=job_id, params=params, input_key=key,
        input_filename="in.wav", input_size_bytes=len(data),
        upload_expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )  # fmt: skip
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    return row


@pytest.mark.slow
def test_end_to_end_over_http(alice, services, api_url, relay_secret_key, worker_env) -> None:
    """Reference upload → instant voice → input upload → job → output as long as the input at
    44.1 kHz, with a quality report and pitch advice stored on the job."""
    profile = alice.client.post("/profiles", json={"name": "instant"}).json()
    reference = encode(singing(12.0, f0=330, seed=1), RATE, "flac")
    refused = alice.client.post(
        f"/profiles/{profile['id']}/instant/voices",
        json={"name": "Me", "filename": "me.flac", "content_type": "audio/flac",
              "size_bytes": len(reference), "consent": False},
    )  # fmt: skip
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "CONSENT_REQUIRED"
    ticket = alice.client.post(
        f"/profiles/{profile['id']}/instant/voices",
        json={"name": "Me", "filename": "me.flac", "content_type": "audio/flac",
              "size_bytes": len(reference), "consent": True},
    )  # fmt: skip
    assert ticket.status_code == 201, ticket.text
    voice = ticket.json()["voice"]
    assert voice["status"] == "awaiting_upload" and "right to use" in voice["consent_text"]
    _put(ticket.json(), reference)
    key = keys.instant_reference_key(alice.id, UUID(profile["id"]), UUID(voice["id"]), "flac")
    assert _event(services, api_url, relay_secret_key, key) == "probed"
    voice = alice.client.get(f"/instant/voices/{voice['id']}").json()
    assert voice["status"] == "ready" and voice["reference_seconds"] == pytest.approx(12.0, 0.01)

    source = singing(3.3, f0=220, seed=2)
    data = encode(source, RATE, "wav", "PCM_16")
    ticket = alice.client.post(
        "/instant/jobs",
        json={"voice_id": voice["id"], "filename": "stem.wav", "content_type": "audio/wav",
              "size_bytes": len(data), "params": {"transpose": 2}},
    )  # fmt: skip
    assert ticket.status_code == 201, ticket.text
    job_id = ticket.json()["job"]["id"]
    _put(ticket.json(), data)
    key = keys.instant_input_key(alice.id, UUID(profile["id"]), UUID(job_id), "wav")
    assert _event(services, api_url, relay_secret_key, key) == "queued"

    deadline = time.monotonic() + 600
    while (job := alice.client.get(f"/instant/jobs/{job_id}").json())["status"] not in {
        "succeeded", "failed", "canceled",
    }:  # fmt: skip
        assert time.monotonic() < deadline, job
        time.sleep(1)
    assert job["status"] == "succeeded", job
    assert job["input_duration_sec"] == pytest.approx(3.3, abs=0.01)
    assert job["gpu_seconds"] > 0
    report = job["quality"]
    assert -1 <= report["similarity"] <= 1 and -1 <= report["ceiling"] <= 1
    assert report["ceiling"] > 0.5  # the reference's halves are one singer, even here
    link = alice.client.get(f"/instant/jobs/{job_id}/download").json()
    out, rate = sf.read(io.BytesIO(httpx.get(link["url"]).content), dtype="float32")
    assert rate == RATE and len(out) == len(source) and np.isfinite(out).all()
    assert link["filename"] == "stem-instant.wav"
    listed = alice.client.get(f"/profiles/{profile['id']}/instant/jobs").json()
    assert [j["id"] for j in listed] == [job_id]


def test_reference_outside_10_to_30_seconds_is_rejected(services, alice) -> None:
    profile = services.repo.create_profile(alice.id, "short")
    short = _voice(services.repo, services.storage, alice.id, profile.id, seconds=4.0)
    assert short.status == "rejected" and short.error_code == "TOO_SHORT"
    long = _voice(services.repo, services.storage, alice.id, profile.id, seconds=31.0)
    assert long.status == "rejected" and long.error_code == "TOO_LONG"
    with pytest.raises(PipelineError) as refused:
        _job(services.repo, services.storage, short, singing(2.0))
    assert refused.value.code == "REFERENCE_NOT_READY"


def test_own_quota_one_at_a_time_and_the_gpu_budget(services, alice, sql) -> None:
    """Counted apart from conversions (its own setting); one in flight; no GPU budget, no job."""
    profile = services.repo.create_profile(alice.id, "quota")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    first = _job(services.repo, services.storage, voice, singing(2.0))
    with pytest.raises(PipelineError) as busy:
        _job(services.repo, services.storage, voice, singing(2.0))
    assert busy.value.code == "INSTANT_IN_PROGRESS"
    used = sql.execute(
        "select kind, used from public.usage_counters where user_id = %s", (alice.id,)
    ).fetchall()
    assert used == [("instant", 1)]
    services.repo.cancel_job("instant", alice.id, first.id)  # refunds the unit

    none_left = Repository(
        services.db, services.settings.model_copy(update={"instant_conversions_per_day": 0})
    )
    with pytest.raises(PipelineError) as quota:
        _job(none_left, services.storage, voice, singing(2.0))
    assert quota.value.code == "QUOTA_EXCEEDED"

    sql.execute(
        "insert into public.quota_overrides (user_id, gpu_seconds_per_month) values (%s, 0) "
        "on conflict (user_id) do update set gpu_seconds_per_month = 0",
        (alice.id,),
    )
    with pytest.raises(PipelineError) as budget:
        _job(services.repo, services.storage, voice, singing(2.0))
    assert budget.value.code == "GPU_BUDGET_EXHAUSTED"


@pytest.mark.slow
def test_song_canceled_while_separating_refunds(services, alice, worker_env, sql) -> None:
    """A cancel in the separate phase stops the worker there: canceled, quota refunded, no
    output; the separator is a double that cancels the row and reports progress."""
    from gpu.instant.job import InstantRun

    profile = services.repo.create_profile(alice.id, "song")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    job = _job(services.repo, services.storage, voice, singing(3.0), input_kind="song")
    InstantCalls(services.repo).queue_job(job.id)

    def separator(source, vocals, instrumental, *, cache_dir, device, progress) -> None:
        services.repo.cancel_job("instant", alice.id, job.id)
        if progress(0.5) is False:
            raise JobCanceled

    status = InstantRun(services.repo, services.storage, services.settings, job.id, separator).run()
    row = services.repo.get_job_by_id("instant", job.id)
    assert status == "canceled" and row.status == "canceled" and row.quota_state == "refunded"
    assert row.output_key is None


def test_deleting_a_voice_deletes_its_audio(services, alice) -> None:
    profile = services.repo.create_profile(alice.id, "erase")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    job = _job(services.repo, services.storage, voice, singing(2.0))
    services.repo.cancel_job("instant", alice.id, job.id)
    assert services.storage.head(voice.reference_key) is not None
    assert delete_voice(services.repo, services.storage, alice.id, voice.id) >= 2
    assert services.storage.head(voice.reference_key) is None
    assert services.storage.head(job.input_key) is None
    assert InstantCalls(services.repo).voice_by_id(voice.id) is None
    assert services.repo.get_job_by_id("instant", job.id) is None


def test_orphan_sweep_leaves_instant_audio_alone(services, alice, tmp_path) -> None:
    """The sweep deletes layout keys no row claims: a voice's reference is claimed by its row
    (`unclaimed_object_keys` knows the instant tables), an instant job's output left by a
    job that no longer exists is not."""
    from pipeline.retention import sweep_orphans

    profile = services.repo.create_profile(alice.id, "sweep")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    stray = keys.instant_part_key(alice.id, profile.id, uuid4(), "mix")
    (tmp_path / "stray.wav").write_bytes(encode(singing(1.0), RATE, "wav", "PCM_16"))
    services.storage.upload_file(tmp_path / "stray.wav", stray, "audio/wav")
    later = datetime.now(UTC) + timedelta(days=30)
    sweep_orphans(services.repo, services.storage, now=later)
    assert services.storage.head(voice.reference_key) is not None
    assert services.storage.head(stray) is None


def test_an_expired_upload_does_not_block_the_next_one(services, alice) -> None:
    """One at a time must not mean stuck behind a ticket whose input never came: creating the
    next one cancels (and refunds) the person's expired ones first."""
    profile = services.repo.create_profile(alice.id, "expired")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    job_id = uuid4()
    InstantCalls(services.repo).create_job(
        user_id=alice.id, voice_id=voice.id, job_id=job_id, params={},
        input_key=keys.instant_input_key(alice.id, profile.id, job_id, "wav"),
        input_filename="in.wav", input_size_bytes=1000,
        upload_expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )  # fmt: skip
    _job(services.repo, services.storage, voice, singing(2.0))
    expired = services.repo.get_job_by_id("instant", job_id)
    assert expired.status == "canceled" and expired.error_code == "UPLOAD_EXPIRED"
    assert expired.quota_state == "refunded"


def test_rows_deleted_with_their_profile_queue_their_audio(services, alice, sql) -> None:
    """A deleted profile is purged by retention, which deletes its rows (instant ones by
    cascade): their reference, input and outputs are queued for deletion with them, since the
    orphan sweep leaves instant keys alone."""
    profile = services.repo.create_profile(alice.id, "purged")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    job = _job(services.repo, services.storage, voice, singing(2.0), input_kind="song")
    sql.execute("delete from public.voice_profiles where id = %s", (profile.id,))
    queued = {
        r[0]
        for r in sql.execute(
            "select object_key from public.object_deletions where user_id = %s", (alice.id,)
        ).fetchall()
    }
    part = keys.instant_part_key(alice.id, profile.id, job.id, "instrumental")
    assert {voice.reference_key, job.input_key, part} <= queued


def test_the_input_is_served_for_the_before_after_player(services, alice, bob) -> None:
    """`/instant/jobs/{id}/input` gives the page the input as uploaded (its A/B player's
    "before"): not before the upload, only to its owner, and as the same bytes."""
    profile = services.repo.create_profile(alice.id, "ab")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    job = _job(services.repo, services.storage, voice, singing(2.0))
    early = alice.client.get(f"/instant/jobs/{job.id}/input")
    assert early.status_code == 409 and early.json()["error"]["code"] == "NOT_READY"
    InstantCalls(services.repo).queue_job(job.id)
    link = alice.client.get(f"/instant/jobs/{job.id}/input")
    assert link.status_code == 200, link.text
    assert link.json()["filename"] == "in.wav"
    body = httpx.get(link.json()["url"]).content
    assert (
        body
        == services.storage._s3.get_object(Bucket=services.storage.bucket, Key=job.input_key)[
            "Body"
        ].read()
    )
    assert bob.client.get(f"/instant/jobs/{job.id}/input").status_code == 404


def _add_clip(client, voice_id, data: bytes, consent: bool = True):
    return client.post(
        f"/instant/voices/{voice_id}/clips",
        json={"filename": "more.wav", "content_type": "audio/wav", "size_bytes": len(data),
              "consent": consent},
    )  # fmt: skip


def test_a_voice_of_several_clips(services, alice, bob, api_url, relay_secret_key) -> None:
    """More clips of the same voice over HTTP: each confirmed, uploaded and probed like the
    first (a clip may be short, not under 3 s), listed inside its voice (never as a voice of
    its own), refused once the ready clips fill the 25 s the model hears, handed to the worker
    oldest first, and deleted with their audio, one at a time or with the voice."""
    profile = services.repo.create_profile(alice.id, "clips")
    voice = _voice(services.repo, services.storage, alice.id, profile.id, seconds=12.0)
    five = encode(singing(5.0, f0=220, seed=5), RATE, "wav", "PCM_16")
    refused = _add_clip(alice.client, voice.id, five, consent=False)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "CONSENT_REQUIRED"
    assert _add_clip(bob.client, voice.id, five).status_code == 404

    def added(data: bytes) -> dict:
        ticket = _add_clip(alice.client, voice.id, data)
        assert ticket.status_code == 201, ticket.text
        clip = ticket.json()["clip"]
        _put(ticket.json(), data)
        key = keys.instant_reference_key(alice.id, profile.id, UUID(clip["id"]), "wav")
        assert _event(services, api_url, relay_secret_key, key) == "probed"
        return clip

    first = added(five)
    short = added(encode(singing(2.0, f0=220, seed=6), RATE, "wav", "PCM_16"))
    second = added(encode(singing(14.0, f0=440, seed=7), RATE, "wav", "PCM_16"))
    shown = alice.client.get(f"/instant/voices/{voice.id}").json()
    assert [c["id"] for c in shown["clips"]] == [first["id"], short["id"], second["id"]]
    assert [c["status"] for c in shown["clips"]] == ["ready", "rejected", "ready"]
    assert shown["clips"][1]["error_code"] == "TOO_SHORT"
    assert shown["clips"][0]["reference_seconds"] == pytest.approx(5.0, 0.01)
    listed = alice.client.get(f"/profiles/{profile.id}/instant/voices").json()
    assert [v["id"] for v in listed] == [str(voice.id)]  # clips are not voices
    assert alice.client.get(f"/instant/voices/{first['id']}").status_code == 404
    full = _add_clip(alice.client, voice.id, five)  # 12 + 5 + 14 s ready: all the model hears
    assert full.status_code == 409 and full.json()["error"]["code"] == "TOO_MANY_FILES"

    job = _job(services.repo, services.storage, voice, singing(2.0))
    with pytest.raises(PipelineError) as not_a_voice:
        _job(services.repo, services.storage, voice.model_copy(update={"id": UUID(first["id"])}),
             singing(2.0))  # fmt: skip
    assert not_a_voice.value.code == "NOT_FOUND"
    InstantCalls(services.repo).queue_job(job.id)
    worker_view = InstantCalls(services.repo).job_voice(job.id)
    clip_key = keys.instant_reference_key(alice.id, profile.id, UUID(first["id"]), "wav")
    second_key = keys.instant_reference_key(alice.id, profile.id, UUID(second["id"]), "wav")
    assert worker_view.reference_key == voice.reference_key
    assert worker_view.clip_keys == [clip_key, second_key]  # the rejected one is left out
    services.repo.cancel_job("instant", alice.id, job.id)

    gone = alice.client.delete(f"/instant/voices/{voice.id}/clips/{first['id']}")
    assert gone.status_code == 204
    assert services.storage.head(clip_key) is None
    assert alice.client.delete(f"/instant/voices/{voice.id}/clips/{voice.id}").status_code == 404
    shown = alice.client.get(f"/instant/voices/{voice.id}").json()
    assert [c["id"] for c in shown["clips"]] == [short["id"], second["id"]]
    assert alice.client.delete(f"/instant/voices/{voice.id}").status_code == 204
    assert services.storage.head(second_key) is None
    assert services.storage.head(voice.reference_key) is None


def test_the_worker_joins_the_clips_up_to_25_seconds(services, alice, tmp_path) -> None:
    """The reference the model hears: the first clip, then the added ones in order, cut at
    25 s; a clip past that point is not fetched (a missing object there does not fail)."""
    from gpu.instant.job import joined_reference

    profile = services.repo.create_profile(alice.id, "join")
    voice = _voice(services.repo, services.storage, alice.id, profile.id, seconds=12.0)
    takes = [singing(12.0, f0=330, seed=3), singing(5.0, f0=220, seed=8),
             singing(14.0, f0=440, seed=9)]  # fmt: skip
    clip_keys = []
    for take in takes[1:]:
        key = keys.instant_reference_key(alice.id, profile.id, uuid4(), "wav")
        data = encode(take, RATE, "wav", "PCM_16")
        services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=data)
        clip_keys.append(key)
    clip_keys.append(keys.instant_reference_key(alice.id, profile.id, uuid4(), "wav"))  # absent
    voice = voice.model_copy(update={"clip_keys": clip_keys})
    joined = joined_reference(services.storage, services.settings, voice, tmp_path)
    heard, rate = sf.read(joined, dtype="float32")
    assert rate == RATE and len(heard) == 25 * RATE
    decoded = [sf.read(io.BytesIO(encode(t, RATE, "wav", "PCM_16")), dtype="float32")[0]
               for t in takes]  # fmt: skip
    expected = np.concatenate(decoded)[: 25 * RATE]
    assert np.allclose(heard, expected, atol=1e-6)


def test_a_purged_profile_queues_every_clip(services, alice, sql) -> None:
    """A profile's purge deletes its voices' clip rows by cascade; each clip's audio is queued
    for deletion with them, as a first reference's is."""
    profile = services.repo.create_profile(alice.id, "purged clips")
    voice = _voice(services.repo, services.storage, alice.id, profile.id)
    clip_id = uuid4()
    clip_key = keys.instant_reference_key(alice.id, profile.id, clip_id, "wav")
    InstantCalls(services.repo).add_clip(
        user_id=alice.id, voice_id=voice.id, clip_id=clip_id, reference_key=clip_key,
        filename="more.wav", size_bytes=1000, consent_text="mine",
        upload_expires_at=datetime.now(UTC),
    )  # fmt: skip
    sql.execute("delete from public.voice_profiles where id = %s", (profile.id,))
    queued = {
        r[0]
        for r in sql.execute(
            "select object_key from public.object_deletions where user_id = %s", (alice.id,)
        ).fetchall()
    }
    assert {voice.reference_key, clip_key} <= queued
