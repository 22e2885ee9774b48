"""Text in a voice with the real fork: the real Piper voice speaks, the tiny voice model trained
for this session converts (its pitch moved to the voice's recorded median), and the job runs
end to end through the API, the shared job machine and the worker's code."""

from pathlib import Path

import numpy as np
import pytest

from schemas.pitch import semitones
from schemas.text import TextOptions
from tests.audio import voice

pytestmark = pytest.mark.slow
LINE = "Hello there! This is my own voice, reading a line I typed a moment ago."


@pytest.fixture(scope="module")
def cache(services, worker_env):
    """A conversion worker's model cache living in this process (a warm container)."""
    import os

    os.environ.update({k: v for k, v in worker_env.items() if k.startswith(("HF_", "VC_"))})
    from gpu.conversion.model_cache import ModelCache
    from gpu.measures import f0
    from gpu.weights import use_cache

    use_cache(Path(services.settings.model_cache_dir), offline=True)
    f0.install(services.settings.model_cache_dir)
    return ModelCache(services.storage, Path(services.settings.model_cache_dir) / "voices", "cpu")


@pytest.fixture(scope="module")
def version(services, trained_voice):
    voice_, _ = trained_voice
    found = services.repo.get_model_version(voice_.user_id, voice_.model_version_id)
    assert found.pitch_range is not None  # training recorded where the voice sings
    return found


def median_f0(audio: np.ndarray, rate: int) -> float:
    from so_vits_svc_fork.f0 import compute_f0

    peak = float(np.abs(audio).max(initial=0.0))
    assert peak > 1e-4, "silent"
    level = (0.5 / peak * audio).astype(np.float32)
    f0 = compute_f0(level, sampling_rate=rate, hop_length=512, method="harvest")
    return float(np.median(f0[f0 > 0]))


def test_a_trained_voice_says_the_line_in_its_own_range(cache, version, tmp_path) -> None:
    """Piper's voice speaks around 110-170 Hz, the tiny voice sang 180-305 Hz: the base speech
    is moved by the semitones between their medians, and the output's pitch lands near the
    voice's median rather than the TTS voice's. The report records both similarities."""
    import soundfile as sf

    from gpu.measures.quality import embedding
    from gpu.text.engines import PiperEngine
    from gpu.text.speak import speak, trained_target

    svc = cache.get(version)
    reference = voice(6.0, f0=240.0, seed=7)[:, 0]
    target = trained_target(svc, version.pitch_range, embedding(reference, 44100))
    options = TextOptions(f0_method="fcpe")
    spoken = speak(LINE, "en-us", options, [PiperEngine()], target, tmp_path)
    report = spoken.report
    assert report.pitch_mode == "shift"
    expected = round(semitones(report.base_median_hz, report.voice_median_hz))
    assert report.transpose == expected > 0
    out, rate = sf.read(spoken.wav, dtype="float32")
    assert rate == 44100
    heard = median_f0(out, rate)
    assert abs(semitones(heard, version.pitch_range.median_hz)) < abs(
        semitones(report.base_median_hz, version.pitch_range.median_hz)
    )
    assert report.to_voice is not None and report.to_base is not None
    assert -1 <= report.to_voice <= 1 and -1 <= report.to_base <= 1
    assert report.base_voice.voice == "en_US-joe-medium"


def test_a_voice_without_a_range_predicts_its_pitch(cache, version, tmp_path) -> None:
    """The fork's speech F0 predictor instead of a shift when the voice has no recorded
    median (`auto`): nothing to move the base speech to."""
    from gpu.text.engines import PiperEngine
    from gpu.text.speak import speak, trained_target

    target = trained_target(cache.get(version), None, None)
    spoken = speak("Short and sweet.", "en-us", TextOptions(), [PiperEngine()], target, tmp_path)
    assert (spoken.report.pitch_mode, spoken.report.transpose) == ("predict", 0)
    assert spoken.report.to_voice is None and spoken.report.base_voice.chosen == "only"


# The job, end to end -----------------------------------------------------------------------


def _wait(client, job_id: str, seconds: float = 600) -> dict:
    import time

    deadline = time.monotonic() + seconds
    while (job := client.get(f"/speech/{job_id}").json())["status"] in {"queued", "running"}:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def test_a_line_through_the_api_the_machine_and_the_worker(
    trained_voice, services, api_url, sql
) -> None:
    """POST → the worker (`python -m gpu speak`, launched by the API) → MP3 and WAV links that
    decode at 44.1 kHz with the report's length; the quota counts it; retention removes the
    files (the download then says so) and queues both keys."""
    import io

    import httpx
    import soundfile as sf

    voice_, token = trained_voice
    client = httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    used = client.get("/quota").json()
    answer = client.post(
        f"/profiles/{voice_.profile_id}/speech",
        json={"text": LINE, "language": "en", "options": {"f0_method": "fcpe"}},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] in {"queued", "running"}
    job = _wait(client, answer.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["language"] == "en-us" and job["model_version_id"] == str(voice_.model_version_id)
    report = job["report"]
    assert report["base_voice"]["voice"] == "en_US-joe-medium"
    assert report["pitch_mode"] == "shift" and report["transpose"] > 0
    assert report["to_base"] is not None
    seconds = job["output_seconds"]
    assert 2.0 < seconds < 10.0
    for fmt in ("mp3", "wav"):
        link = client.get(f"/speech/{job['id']}/download", params={"format": fmt}).json()
        assert link["filename"].endswith(f".{fmt}")
        audio, rate = sf.read(io.BytesIO(httpx.get(link["url"]).content))
        assert rate == 44100
        assert abs(len(audio) / rate - seconds) < (0.1 if fmt == "mp3" else 0.01)
    assert client.get("/quota").json() != used  # a unit of the day's lines was counted

    sql.execute("select public.expire_text_jobs(0)")
    expired = client.get(f"/speech/{job['id']}/download")
    assert expired.status_code == 409 and expired.json()["error"]["code"] == "FILES_EXPIRED"
    queued = {
        r[0]
        for r in sql.execute(
            "select object_key from public.object_deletions where reason = 'text_expired' "
            "and object_key like %s",
            (f"%/speech/{job['id']}/%",),
        ).fetchall()
    }
    assert {k.rsplit("/", 1)[1] for k in queued} == {"speech.wav", "speech.mp3"}


def test_a_deleted_row_takes_its_files_and_a_cancel_refunds(
    trained_voice, services, api_url, sql
) -> None:
    """Canceled while queued: refunded. A row that goes (its profile purged, its model deleted,
    an account erased: here deleted directly) queues its two keys."""
    import httpx

    voice_, token = trained_voice
    client = httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    answer = client.post(f"/profiles/{voice_.profile_id}/speech", json={"text": "One more."})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    canceled = client.post(f"/speech/{job_id}/cancel").json()
    assert canceled["status"] in {"canceled", "succeeded"}
    _wait(client, job_id)
    sql.execute("delete from public.text_jobs where id = %s", (job_id,))
    keys = sql.execute(
        "select object_key from public.object_deletions where object_key like %s",
        (f"%/speech/{job_id}/%",),
    ).fetchall()
    assert len(keys) == 2
