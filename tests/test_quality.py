"""The quality metrics on audio whose answer is known: real Resemblyzer and torchfcpe weights
(shipped in their wheels), espeak-ng voices and synthetic sung lines. No training."""

import numpy as np
import pytest

from gpu.measures import quality
from tests.vocals import RATE, have_espeak, singing, speech

SEMITONES_3 = 2 ** (3 / 12)


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng (make espeak)")
def test_speaker_similarity_ranks_the_same_voice_above_another() -> None:
    voices = ["en+m3", "en+f2", "en+m7"]
    embedded = {
        v: [quality.embedding(speech(6, voice=v, seed=s), RATE) for s in range(3)] for v in voices
    }
    for v in voices:
        centre = quality.centroid(embedded[v][:2])  # the "training" audio
        held_out = embedded[v][2]
        same = quality.cosine(held_out, centre)
        for other in voices:
            if other == v:
                continue
            different = quality.cosine(embedded[other][2], centre)
            assert same > different + 0.05, (v, other, same, different)


def test_melody_of_a_line_against_itself_is_perfect() -> None:
    line = singing(6, f0=220, seed=3)
    f0 = quality.f0_contour(line, RATE)
    found = quality.melody(f0, f0)
    assert found.corr == pytest.approx(1.0)
    assert found.rmse_cents == pytest.approx(0.0)
    assert found.voiced_frames > 400


def test_melody_follows_a_three_semitone_transpose() -> None:
    low = quality.f0_contour(singing(6, f0=220, seed=3), RATE)
    high = quality.f0_contour(singing(6, f0=220 * SEMITONES_3, seed=3), RATE)
    moved = quality.melody(low, high, shift_cents=300)
    assert moved.corr > 0.98, moved
    assert moved.rmse_cents < 30, moved
    not_moved = quality.melody(low, high)  # compared as if no transpose had been asked
    assert not_moved.rmse_cents > 250, not_moved


def test_an_unrelated_melody_correlates_poorly() -> None:
    one = quality.f0_contour(singing(6, f0=220, seed=3), RATE)
    other = quality.f0_contour(singing(6, f0=220, seed=11), RATE)
    found = quality.melody(one, other)
    assert found.corr is not None and found.corr < 0.5, found
    assert found.rmse_cents > 200, found


def test_melody_needs_frames_voiced_in_both() -> None:
    voiced, silent = np.full(100, 220.0), np.zeros(100)
    assert quality.melody(voiced, silent) == quality.Melody(None, None, 0)


def test_mcd_is_zero_for_identical_audio_and_grows_with_noise() -> None:
    line = singing(4, f0=200, seed=5).astype(np.float64)
    assert quality.mcd(line, line, RATE) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(line.size)
    noise *= np.sqrt(np.mean(line**2) / np.mean(noise**2))
    distortion = [
        quality.mcd(line, line + 10 ** (-snr / 20) * noise, RATE) for snr in (40, 30, 20, 10, 0)
    ]
    assert all(d is not None and d > 0 for d in distortion), distortion
    assert distortion == sorted(distortion), distortion
    assert distortion[-1] > 2 * distortion[0], distortion


def test_mcd_of_silence_is_none() -> None:
    assert quality.mcd(np.zeros(RATE), np.zeros(RATE), RATE) is None


def test_tool_versions_name_every_tool() -> None:
    versions = quality.tool_versions()
    assert set(versions) == set(quality.TOOLS)
    assert all(versions.values())


def test_a_report_that_cannot_be_made_is_stored_as_null_with_a_note(tmp_path) -> None:
    from gpu.training.evaluate import measure

    config = tmp_path / "config.json"
    config.write_text("{}")

    def never(*args: object) -> None:
        raise AssertionError("no step was reached")

    entries = measure(tmp_path / "missing.pth", config, "fcpe", tmp_path / "out", never, never)
    assert entries["quality"] is None
    assert entries["quality_error"] and len(entries["quality_error"]) <= 300


def test_a_stop_asked_while_measuring_still_stops(tmp_path, monkeypatch) -> None:
    """A cancel or an exhausted budget, seen by a heartbeat during the report, is not
    swallowed as a failed report."""
    from gpu.errors import JobCanceled
    from gpu.training import evaluate

    def stopped(*args: object) -> None:
        raise JobCanceled

    monkeypatch.setattr(evaluate, "load_svc", lambda *args: object())
    monkeypatch.setattr(evaluate, "evaluate", lambda svc, config, method, out, beat: beat(50.0))
    with pytest.raises(JobCanceled):
        evaluate.measure(
            tmp_path / "m.pth", tmp_path / "c.json", "fcpe", tmp_path, stopped, stopped
        )
