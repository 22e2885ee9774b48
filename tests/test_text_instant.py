"""Text in an instant voice (issues 26/27), end to end over HTTP: a ready instant voice (its
reference uploaded and probed), `POST /profiles/{id}/speech` naming it, the worker launched by
the API (`python -m gpu speak`) speaking with Piper and converting with Seed-VC's tiny random
weights (`gpu.instant.weights.write_tiny`, the instant tests' model), and WAV and MP3 that
decode at 44.1 kHz. Random weights make noise-like audio, so what is checked is what holds
whatever the weights: the flow, rates and lengths, the refusals, the report's similarity
being to the reference, and the voice's deletion taking its spoken lines."""

import io
import time
from uuid import uuid4

import httpx
import numpy as np
import pytest
import soundfile as sf

from gpu.instant import weights as instant_weights
from tests.conftest import MODEL_CACHE
from tests.test_instant import _voice

pytestmark = pytest.mark.slow
RATE = 44100


def _wait(client: httpx.Client, job_id: str, seconds: float = 600) -> dict:
    deadline = time.monotonic() + seconds
    while (job := client.get(f"/speech/{job_id}").json())["status"] in {"queued", "running"}:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def _speak(client: httpx.Client, profile_id, voice_id, text: str = "Hello from my sample."):
    return client.post(
        f"/profiles/{profile_id}/speech",
        json={"text": text, "voice": {"kind": "instant", "instant_voice_id": str(voice_id)},
              "options": {"f0_method": "fcpe"}},
    )  # fmt: skip


def test_a_line_in_an_instant_voice_over_http(services, alice, bob, sql) -> None:
    from gpu.measures import quality
    from gpu.weights import write_tiny_rmvpe

    instant_weights.write_tiny(MODEL_CACHE)
    write_tiny_rmvpe(MODEL_CACHE)  # Seed-VC's pitch tracker (VC_INSTANT_F0_METHOD)
    repo, storage = services.repo, services.storage
    profile = repo.create_profile(alice.id, "instant speaker")
    voice = _voice(repo, storage, alice.id, profile.id)
    assert voice.status == "ready"

    answer = _speak(alice.client, profile.id, voice.id)
    assert answer.status_code == 201, answer.text
    job = _wait(alice.client, answer.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["voice_kind"] == "instant" and job["instant_voice_id"] == str(voice.id)
    report = job["report"]
    assert report["base_voice"]["voice"] == "en_US-joe-medium"
    assert report["to_voice"] is not None and report["to_base"] is not None
    seconds = job["output_seconds"]
    assert 0.5 < seconds < 10.0
    for fmt in ("mp3", "wav"):
        link = alice.client.get(f"/speech/{job['id']}/download", params={"format": fmt}).json()
        assert link["filename"].endswith(f".{fmt}")
        audio, rate = sf.read(io.BytesIO(httpx.get(link["url"]).content), dtype="float32")
        assert rate == RATE and np.isfinite(audio).all()
        assert abs(len(audio) / rate - seconds) < (0.1 if fmt == "mp3" else 0.01)
        if fmt == "wav":  # the similarity reported is the output's to the reference
            body = storage._s3.get_object(Bucket=storage.bucket, Key=voice.reference_key)
            reference, ref_rate = sf.read(io.BytesIO(body["Body"].read()), dtype="float32")
            assert ref_rate == RATE
            to_reference = quality.cosine(
                quality.embedding(audio, rate), quality.embedding(reference, ref_rate)
            )
            assert report["to_voice"] == pytest.approx(to_reference, abs=0.02)

    # Refusals, in the one error shape: a rejected reference, a stranger's voice, another
    # profile's voice.
    rejected = _voice(repo, storage, alice.id, profile.id, seconds=4.0)
    refused = _speak(alice.client, profile.id, rejected.id)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "REFERENCE_NOT_READY"
    theirs = _voice(repo, storage, bob.id, repo.create_profile(bob.id, "bob's").id)
    assert _speak(alice.client, profile.id, theirs.id).status_code == 404
    other = repo.create_profile(alice.id, "another profile")
    missing = _speak(alice.client, other.id, voice.id)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert _speak(alice.client, profile.id, uuid4()).status_code == 404

    # Deleting the voice takes its spoken lines and queues their files.
    assert alice.client.delete(f"/instant/voices/{voice.id}").status_code in {200, 204}
    assert alice.client.get(f"/speech/{job['id']}").status_code == 404
    queued = {
        r[0]
        for r in sql.execute(
            "select object_key from public.object_deletions where object_key like %s",
            (f"%/speech/{job['id']}/%",),
        ).fetchall()
    }
    assert {k.rsplit("/", 1)[1] for k in queued} == {"speech.wav", "speech.mp3"}
