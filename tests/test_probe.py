"""The probe on real files in the real object store: honest numbers, a readable verdict, and
no crash or hang on hostile input."""

import re
import subprocess
from uuid import UUID, uuid4

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from pipeline import keys
from pipeline.audio import measure
from pipeline.probe import probe_dataset_file
from tests.audio import encode, hostile_corpus, voice


def put_dataset_file(repo, storage, user_id: UUID, profile_id: UUID, data: bytes, name: str):
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, name)
    repo.register_upload(user_id, profile_id, file_id, key, name, "audio/wav", max(len(data), 1))
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    return file_id


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_good_files_are_ready_with_measurements(repo, services, alice, fmt) -> None:
    profile = repo.create_profile(alice.id, f"probe {fmt}")
    data = encode(voice(8.0, channels=2), 44100, fmt)
    file_id = put_dataset_file(repo, services.storage, alice.id, profile.id, data, f"a.{fmt}")
    row = probe_dataset_file(repo, services.storage, file_id)
    assert row.status == "ready", (row.reject_code, row.reject_message)
    assert row.format == fmt
    assert abs(row.duration_sec - 8.0) < 0.1
    assert (row.sample_rate, row.channels) == (44100, 2)
    assert -30 < row.loudness_lufs < -5
    assert row.snr_db > 20
    assert row.quality_grade in {"good", "fair"}
    assert row.quality_notes
    assert row.etag and row.probed_at is not None


def test_loudness_matches_pyloudnorm(tmp_path) -> None:
    for rate, channels in [(44100, 1), (48000, 2), (22050, 1)]:
        samples = voice(6.3, rate=rate, channels=channels, level=0.5)
        path = tmp_path / f"{rate}.wav"
        sf.write(path, samples, rate, subtype="FLOAT")
        reference = pyloudnorm.Meter(rate).integrated_loudness(samples.astype(np.float64))
        assert measure(path, 600).loudness_lufs == pytest.approx(reference, abs=0.05)


def _ffmpeg_ebur128(path) -> float:
    """Integrated loudness from ffmpeg's `ebur128` filter: an independent BS.1770 meter."""
    command = ["ffmpeg", "-nostats", "-hide_banner", "-i", str(path)]
    done = subprocess.run(
        [*command, "-af", "ebur128", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", done.stderr)[-1])


def _low_signals(rate: int) -> dict[str, np.ndarray]:
    t = np.arange(12 * rate) / rate  # 12 s: many read blocks, so the filter state must carry
    hum = 0.01 * np.random.default_rng(1).standard_normal(t.size)
    return {
        "dc steps": np.where(t % 2 < 1, 0.2, -0.1),
        "square at 0.5 Hz": 0.05 * np.sign(np.sin(2 * np.pi * 0.5 * t)),
        "rumble 15 Hz": 0.3 * np.sin(2 * np.pi * 15 * t),
        "rumble 25 Hz + hiss": 0.3 * np.sin(2 * np.pi * 25 * t) + hum,
        "sub-bass 40 Hz": 0.3 * np.sin(2 * np.pi * 40 * t),
        "sub-bass 55 Hz": 0.3 * np.sin(2 * np.pi * 55 * t),
    }


@pytest.mark.parametrize("rate", [48000, 44100])
def test_steps_rumble_and_sub_bass_read_as_ffmpeg_ebur128_does(tmp_path, rate) -> None:
    """Weighting each 50 ms frame's spectrum read DC steps 13-32 LU too quiet and a 15 Hz
    rumble 7 LU too loud; the time-domain K-weighting agrees with ffmpeg within 0.5 LU
    (and with pyloudnorm as closely as before)."""
    for name, samples in _low_signals(rate).items():
        path = tmp_path / f"{rate}.wav"
        sf.write(path, samples.astype(np.float32), rate, subtype="FLOAT")
        ours = measure(path, 600).loudness_lufs
        assert ours is not None, name
        assert ours == pytest.approx(_ffmpeg_ebur128(path), abs=0.5), name
        reference = pyloudnorm.Meter(rate).integrated_loudness(samples)
        assert ours == pytest.approx(reference, abs=0.05), name


def test_hostile_corpus_then_good_files_still_probe(repo, services, alice) -> None:
    profile = repo.create_profile(alice.id, "hostile")
    storage = services.storage
    for name, (data, filename, expected) in hostile_corpus().items():
        file_id = put_dataset_file(repo, storage, alice.id, profile.id, data, filename)
        row = probe_dataset_file(repo, storage, file_id)
        outcome = "ready" if row.status == "ready" else row.reject_code
        assert outcome in expected, (name, outcome, row.reject_message)
        if row.status == "rejected":
            assert row.reject_message, name
    good = put_dataset_file(
        repo, storage, alice.id, profile.id, encode(voice(4.0), 44100, "flac"), "ok.flac"
    )
    assert probe_dataset_file(repo, storage, good).status == "ready"


def test_per_file_and_total_limits(repo, services, alice) -> None:
    from pipeline.repository import Repository

    settings = repo.settings.model_copy(
        update={"max_dataset_file_seconds": 5.0, "max_dataset_seconds": 8.0}
    )
    small = Repository(repo.db, settings)
    profile = small.create_profile(alice.id, "limits")
    storage = services.storage
    too_long = put_dataset_file(
        small, storage, alice.id, profile.id, encode(voice(6.0), 44100, "wav"), "long.wav"
    )
    assert probe_dataset_file(small, storage, too_long).reject_code == "TOO_LONG"
    first = put_dataset_file(
        small, storage, alice.id, profile.id, encode(voice(4.5), 44100, "wav"), "a.wav"
    )
    second = put_dataset_file(
        small, storage, alice.id, profile.id, encode(voice(4.5), 44100, "wav"), "b.wav"
    )
    assert probe_dataset_file(small, storage, first).status == "ready"
    assert probe_dataset_file(small, storage, second).reject_code == "DATASET_FULL"


def test_missing_object_is_transient_not_a_rejection(repo, services, alice) -> None:
    from pipeline.errors import Unavailable

    profile = repo.create_profile(alice.id, "missing")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, "never.wav")
    repo.register_upload(alice.id, profile.id, file_id, key, "never.wav", "audio/wav", 10)
    with pytest.raises(Unavailable):
        probe_dataset_file(repo, services.storage, file_id)
    assert repo.get_dataset_file(file_id).status == "pending"
