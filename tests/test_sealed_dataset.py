"""What was probed is what trains: a second PUT on a still-valid upload URL, with the same
length and type but other bytes, lands after the probe said `ready`; the training refuses it
with DATASET_CHANGED before any GPU work, and the quota is refunded."""

import time
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
import soundfile as sf

from gpu.errors import JobFailure
from tests.audio import encode, voice
from tests.events_helpers import deliver, r2_event


def _wait_for_end(client: httpx.Client, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/trainings/{job_id}").json()
        if job["status"] in {"succeeded", "failed", "canceled"}:
            return job
        time.sleep(0.5)
    raise AssertionError("the training did not end")


def test_a_file_swapped_after_its_probe_fails_the_training(
    alice, services, api_url, relay_secret_key
) -> None:
    client, storage = alice.client, services.storage
    profile = client.post("/profiles", json={"name": "swapped"}).json()
    sung = encode(voice(30.0, f0=200), 44100, "wav", "PCM_16")
    body = {"filename": "take.wav", "content_type": "audio/wav", "size_bytes": len(sung)}
    ticket = client.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).json()
    assert httpx.put(ticket["upload_url"], content=sung, headers=ticket["headers"]).is_success
    info = storage.head(ticket["object_key"])
    event = r2_event(storage.bucket, ticket["object_key"], info.etag, info.size)
    assert deliver(api_url, relay_secret_key, event).status_code == 200
    files = client.get(f"/profiles/{profile['id']}/dataset/files").json()
    assert [f["status"] for f in files] == ["ready"]

    # The same URL, still valid: other bytes of the same length and type replace the object.
    other = encode(voice(30.0, f0=400, seed=3), 44100, "wav", "PCM_16")
    assert len(other) == len(sung) and other != sung
    assert httpx.put(ticket["upload_url"], content=other, headers=ticket["headers"]).is_success
    swapped = storage.head(ticket["object_key"])
    assert swapped.etag != info.etag
    event = r2_event(storage.bucket, ticket["object_key"], swapped.etag, swapped.size)
    outcome = deliver(api_url, relay_secret_key, event).json()["outcomes"][0]
    assert outcome["outcome"] == "no_op"  # the row is ready; nothing re-probes it

    started = client.post(f"/profiles/{profile['id']}/trainings", json={"preset": "tiny"})
    assert started.status_code == 202, started.text
    job = _wait_for_end(client, started.json()["id"])
    assert (job["status"], job["error_code"]) == ("failed", "DATASET_CHANGED"), job
    assert "changed after it was checked" in job["error_message"]
    assert client.get("/quota").json()["training"]["used"] == 0
    assert client.get(f"/profiles/{profile['id']}/models").json() == []


def _item(path: Path, **recorded):
    from schemas.jobs import TrainingInput

    info = sf.info(str(path))
    probed = {"sample_rate": info.samplerate, "channels": info.channels}
    probed |= {"duration_sec": info.duration, "id": uuid4(), "object_key": "k", "size_bytes": 1}
    return TrainingInput.model_validate(probed | recorded)


def test_the_worker_rechecks_rate_channels_and_duration(settings, tmp_path) -> None:
    from gpu.sealed import input_check

    check = input_check(settings)
    path = tmp_path / "take.wav"
    path.write_bytes(encode(voice(5.0), 44100, "wav"))
    check(path, _item(path))  # as probed: passes
    for recorded in ({"sample_rate": 48000}, {"channels": 2}, {"duration_sec": 2.0}):
        with pytest.raises(JobFailure) as failed:
            check(path, _item(path, **recorded))
        assert failed.value.code == "DATASET_CHANGED", recorded
    loud = tmp_path / "eight.wav"
    loud.write_bytes(encode(voice(3.0, channels=8), 44100, "wav"))
    with pytest.raises(JobFailure):
        check(loud, _item(loud))  # whatever was recorded, the limits still hold


def test_uploads_urls_are_short_lived(alice, settings) -> None:
    assert settings.upload_url_seconds <= 300
    profile = alice.client.post("/profiles", json={"name": "short url"}).json()
    body = {"filename": "a.wav", "content_type": "audio/wav", "size_bytes": 1000}
    ticket = alice.client.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).json()
    assert "X-Amz-Expires=300" in ticket["upload_url"]
    assert UUID(ticket["file_id"])
