"""Results downloaded as 16/24-bit WAV, FLAC, MP3 or Ogg Opus (`?format=`), through the real
API, the real object store and real decoders: each format is what it says (ffprobe reads its
codec, bit depth and title), is encoded once and kept beside the result, goes with it when
retention removes the result, and a format nobody offers is a 422 in the one error shape."""

import json
import subprocess
from uuid import UUID

import httpx
import numpy as np
import pytest
import soundfile as sf

from pipeline import encode, keys
from pipeline.retention import run_retention
from tests.audio import encode as encode_audio
from tests.helpers import new_conversion, trained_profile
from tests.test_retention import objects, put

RATE, SECONDS = 44100, 3.0
EXPECTED = {  # format: (codec, sample rate, file extension)
    "wav": ("pcm_s16le", 44100, ".wav"),
    "wav24": ("pcm_s24le", 44100, ".wav"),
    "flac": ("flac", 44100, ".flac"),
    "mp3": ("mp3", 44100, ".mp3"),
    "opus": ("opus", 48000, ".opus"),
}


@pytest.fixture
def storage(services):
    return services.storage


@pytest.fixture
def quota_room(sql):
    def room(user_id: UUID) -> None:
        sql.execute(
            "insert into public.quota_overrides (user_id, conversions_per_day) values (%s, 100)",
            (user_id,),
        )

    return room


def master() -> bytes:
    t = np.arange(int(SECONDS * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    return encode_audio(np.stack([tone, tone], axis=1).astype(np.float32), RATE, "wav", "PCM_24")


def song_with_results(repo, storage, user_id: UUID, profile_id: UUID) -> tuple[UUID, dict]:
    """A succeeded song conversion of `in.wav` whose three results are real 24-bit WAVs."""
    job_id = new_conversion(repo, user_id, profile_id, input_kind="song")
    put(storage, keys.conversion_input_key(user_id, profile_id, job_id, "wav"))
    repo.queue_conversion(job_id)
    repo.claim_job("conversion", job_id)
    parts = {p: keys.conversion_part_key(user_id, profile_id, job_id, p) for p in keys.PART_LEAVES}
    for key in parts.values():
        put(storage, key, master())
    repo.finish_conversion(job_id, parts["mix"], 1.0)
    return job_id, parts


def probe(path) -> tuple[dict, dict]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(done.stdout)
    stream = info["streams"][0]
    tags = {k.lower(): v for k, v in (info["format"].get("tags") or {}).items()}
    tags |= {k.lower(): v for k, v in (stream.get("tags") or {}).items()}
    return stream, tags


@pytest.mark.parametrize("fmt", list(EXPECTED))
def test_each_part_downloads_in_the_format_asked_for(
    repo, storage, alice, quota_room, tmp_path, fmt
) -> None:
    quota_room(alice.id)
    pid = trained_profile(repo, alice.id)["profile_id"]
    job_id, parts = song_with_results(repo, storage, alice.id, pid)
    codec, rate, ext = EXPECTED[fmt]
    for part, name in (("mix", "cover"), ("instrumental", "instrumental")):
        link = alice.client.get(
            f"/conversions/{job_id}/download", params={"part": part, "format": fmt}
        )
        assert link.status_code == 200, link.text
        assert link.json()["filename"] == f"in-{name}{ext}"
        path = tmp_path / f"{part}{ext}"
        path.write_bytes(httpx.get(link.json()["url"]).content)
        stream, tags = probe(path)
        assert (stream["codec_name"], int(stream["sample_rate"]), stream["channels"]) == (
            codec,
            rate,
            2,
        )
        assert tags.get("title") == f"in ({name})"
        assert float(stream.get("duration") or SECONDS) == pytest.approx(SECONDS, abs=0.1)
        assert storage.head(encode.encoded_key(parts[part], fmt)) is not None  # kept


def test_a_format_is_encoded_once_and_kept(repo, storage, alice, quota_room) -> None:
    quota_room(alice.id)
    pid = trained_profile(repo, alice.id)["profile_id"]
    job_id, parts = song_with_results(repo, storage, alice.id, pid)
    first = alice.client.get(f"/conversions/{job_id}/download", params={"format": "flac"})
    kept = storage.head(encode.encoded_key(parts["mix"], "flac"))
    again = alice.client.get(f"/conversions/{job_id}/download", params={"format": "flac"})
    assert first.status_code == again.status_code == 200
    assert storage.head(encode.encoded_key(parts["mix"], "flac")) == kept  # not re-encoded
    assert httpx.get(again.json()["url"]).content[:4] == b"fLaC"


def test_an_unknown_format_is_a_422_in_the_error_shape(repo, storage, alice, quota_room) -> None:
    quota_room(alice.id)
    pid = trained_profile(repo, alice.id)["profile_id"]
    job_id, _ = song_with_results(repo, storage, alice.id, pid)
    for bad in ("m4a", "MP3", ""):
        answer = alice.client.get(f"/conversions/{job_id}/download", params={"format": bad})
        assert answer.status_code == 422, bad
        assert answer.json()["error"]["code"] == "VALIDATION_FAILED"


def test_encodings_go_with_their_result(repo, storage, sql, alice, quota_room, settings) -> None:
    quota_room(alice.id)
    pid = trained_profile(repo, alice.id)["profile_id"]
    job_id, parts = song_with_results(repo, storage, alice.id, pid)
    for fmt in ("mp3", "opus"):
        for part in parts:
            answer = alice.client.get(
                f"/conversions/{job_id}/download", params={"part": part, "format": fmt}
            )
            assert answer.status_code == 200
    assert len(objects(storage, alice.id, pid)) == 1 + 3 + 6
    sql.execute(
        "update public.conversion_jobs set finished_at = now() - make_interval(days => %s) "
        "where id = %s",
        (settings.conversion_retention_days + 1, job_id),
    )
    run_retention(repo, storage)
    assert objects(storage, alice.id, pid) == set()


def test_a_16_bit_wav_is_dithered_not_truncated(tmp_path) -> None:
    """A fade below one 16-bit step survives as noise-shaped signal instead of silence."""
    t = np.arange(RATE) / RATE
    quiet = (0.4 / 32768 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "m.wav", quiet, RATE, subtype="FLOAT")
    encode.encode_file(tmp_path / "m.wav", tmp_path / "o.wav", "wav", "quiet")
    out, _ = sf.read(tmp_path / "o.wav")
    assert np.corrcoef(out, quiet)[0, 1] > 0.2
