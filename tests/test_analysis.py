"""Dataset analysis against audio the tests make: the noise estimate is calibrated on known
mixes, clean vocals of every kind are never rejected, and what is wrong with a usable file is
graded with a sentence and a number."""

import itertools
from uuid import uuid4

import numpy as np
import pytest
import soundfile as sf

from pipeline import keys
from pipeline.audio import measure
from pipeline.probe import probe_dataset_file
from tests.audio import encode
from tests.vocals import RATE, have_espeak, mix_at_snr, singing, speech

needs_espeak = pytest.mark.skipif(not have_espeak(), reason="espeak-ng (make espeak)")
SNRS = [0, 5, 10, 15, 20, 25, 30, 35]


def put(repo, storage, user_id, profile_id, samples: np.ndarray, name: str, rate: int = RATE):
    data = encode(samples, rate, name.rsplit(".", 1)[1])
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, name)
    repo.register_upload(user_id, profile_id, file_id, key, name, "audio/wav", len(data))
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    return probe_dataset_file(repo, storage, file_id)


@needs_espeak
def test_noise_estimate_is_calibrated(tmp_path) -> None:
    """Vocals mixed with white, pink and babble noise at known SNR: the median error is at
    most 3 dB between 5 and 30 dB for each noise, and the estimate rises with the SNR."""
    vocals = {
        "legato": singing(12, seed=1),
        "phrases": singing(12, style="phrases", seed=2, f0=300),
        "staccato": singing(12, style="staccato", seed=3, f0=160),
        "speech": speech(12),
    }
    print(f"\n{'noise':<7} {'vocal':<9}" + "".join(f"{s:>7}" for s in SNRS) + "   (estimated dB)")
    errors: dict[str, list[float]] = {}
    for noise in ("white", "pink", "babble"):
        for name, vocal in vocals.items():
            row = []
            for snr in SNRS:
                path = tmp_path / f"{noise}-{name}-{snr}.wav"
                sf.write(path, mix_at_snr(vocal, noise, snr, seed=snr), RATE, subtype="FLOAT")
                row.append(measure(path, 600).snr_db)
            print(f"{noise:<7} {name:<9}" + "".join(f"{r:7.1f}" for r in row))
            assert all(b > a for a, b in itertools.pairwise(row)), (noise, name, row)
            errors.setdefault(noise, []).extend(
                abs(r - s) for r, s in zip(row, SNRS, strict=True) if 5 <= s <= 30
            )
    medians = {noise: float(np.median(e)) for noise, e in errors.items()}
    print("median absolute error, 5-30 dB:", {k: round(v, 2) for k, v in medians.items()})
    assert all(m <= 3.0 for m in medians.values()), medians


def clean_vocals() -> dict[str, tuple[np.ndarray, int]]:
    cases = {
        "legato, no pause at all": (singing(10, seed=11), RATE),
        "legato, low voice": (singing(10, f0=110, seed=12), RATE),
        "legato, high voice, 48 kHz": (singing(10, f0=600, seed=13, rate=48000), 48000),
        "phrases with breaths": (singing(10, style="phrases", seed=14), RATE),
        "staccato": (singing(10, style="staccato", seed=15), RATE),
        "stereo legato": (np.repeat(singing(10, seed=16)[:, None], 2, axis=1), RATE),
    }
    if have_espeak():
        cases["speech with pauses"] = (speech(10, voice="en+f3", seed=1), RATE)
        cases["speech cut tight, no pauses"] = (speech(10, seed=2, pauses=False), RATE)
    return cases


def test_clean_vocals_are_never_rejected(repo, services, alice) -> None:
    """Legato, staccato, with or without pauses, speech or singing: ready, never noisy."""
    profile = repo.create_profile(alice.id, "sweep")
    rows = {
        name: put(repo, services.storage, alice.id, profile.id, samples, "take.flac", rate)
        for name, (samples, rate) in clean_vocals().items()
    }
    rejected = {name: row.reject_code for name, row in rows.items() if row.status != "ready"}
    assert not rejected
    for name, row in rows.items():
        # espeak's continuous consonant noise reads ~25 dB in a tight 10 s cut; singing 35+
        assert row.snr_db >= 20, (name, row.snr_db)
        assert not {w.code for w in row.warnings} & {"NOISY", "MUSIC_UNDERNEATH"}, name
        assert row.quality_grade in {"good", "fair"}, (name, row.quality_notes)


def bass_and_drums(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    bass = 0.5 * np.sin(2 * np.pi * 55 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    kick = np.sin(2 * np.pi * 50 * t) * np.exp(-((t % 0.5) * 20))
    return (bass + kick).astype(np.float32)


def test_usable_but_flawed_files_are_graded_not_rejected(repo, services, alice) -> None:
    profile = repo.create_profile(alice.id, "graded")
    storage = services.storage
    vocal = singing(8, seed=21)
    cases = {
        "noisy": (mix_at_snr(vocal, "white", 5), "NOISY", "poor"),
        "some noise": (mix_at_snr(vocal, "pink", 20), "SOME_NOISE", "fair"),
        "music underneath": (
            (vocal + 0.3 * bass_and_drums(8))[:, None] * 0.8,
            "MUSIC_UNDERNEATH",
            "poor",
        ),
        "quiet": (vocal[:, None] * 0.1, "QUIET", "fair"),
        "white noise alone": (
            0.2 * np.random.default_rng(3).standard_normal((RATE * 4, 1)).astype(np.float32),
            "NOISY",
            "poor",
        ),
    }
    for name, (samples, code, grade) in cases.items():
        row = put(repo, storage, alice.id, profile.id, samples, "take.wav")
        assert row.status == "ready", (name, row.reject_code)
        warning = next((w for w in row.warnings if w.code == code), None)
        assert warning is not None, (name, row.warnings)
        assert warning.message and np.isfinite(warning.value)
        assert row.quality_grade == grade, (name, row.quality_grade, row.quality_notes)
        assert warning.message in row.quality_notes
    noisy = put(repo, storage, alice.id, profile.id, mix_at_snr(vocal, "white", 5), "n.wav")
    assert noisy.noise_level == "noisy" and 2 < noisy.snr_db < 8


@needs_espeak
def test_voice_activity_per_file_and_for_the_dataset(repo, services, alice) -> None:
    profile = repo.create_profile(alice.id, "voice activity")
    storage = services.storage
    talk = speech(12, seed=4, pauses=False)
    half = np.concatenate([talk[: 6 * RATE], 0.0005 * np.ones(6 * RATE, np.float32)])
    full_row = put(repo, storage, alice.id, profile.id, talk, "talk.wav")
    half_row = put(repo, storage, alice.id, profile.id, half, "half.wav")
    assert full_row.voice_ratio > 0.8
    assert 0.3 < half_row.voice_ratio < 0.6
    summary = repo.get_profile(alice.id, profile.id).dataset
    expected = (full_row.voice_ratio * 12 + half_row.voice_ratio * 12) / 24
    assert summary.voice_ratio == pytest.approx(expected, abs=0.01)
    assert summary.snr_db is not None


def test_long_file_voice_activity_listens_to_stretches(tmp_path) -> None:
    """A 3-minute file: the detector samples stretches, and still finds the talking half."""
    if not have_espeak():
        pytest.skip("espeak-ng (make espeak)")
    talk = speech(90, seed=5, pauses=False)
    samples = np.concatenate([talk, np.zeros(90 * RATE, np.float32)])
    path = tmp_path / "long.flac"
    sf.write(path, samples, RATE)
    stats = measure(path, 600)
    assert 0.35 < stats.voice_ratio < 0.6
