"""The instrumental's pitch shift (gpu/conversion/shift.py) on signals whose right answer is
known: the partials of a close chord land on the shifted pitches, a drum hit stays sharp,
and a steady tone carries no seam where a chunked shifter would join its pieces."""

import numpy as np
import pytest
import soundfile as sf

from gpu.conversion.shift import shift_pitch
from gpu.errors import JobCanceled

RATE = 44100


def harmonic(seconds: float, f0s: tuple[float, ...], rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    parts = [0.15 / k * np.sin(2 * np.pi * k * f * t + k + i) for i, f in enumerate(f0s)
             for k in range(1, 6)]  # fmt: skip
    return np.sum(parts, axis=0).astype(np.float32)


def shifted(tmp_path, samples: np.ndarray, semitones: int, rate: int = RATE) -> np.ndarray:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(source, samples, rate, subtype="FLOAT")
    shift_pitch(source, target, semitones, None)
    out, out_rate = sf.read(target, dtype="float32")
    assert out_rate == rate and out.shape == samples.shape
    return out


def share_on_partials(y: np.ndarray, f0s: tuple[float, ...], ratio: float) -> float:
    """The share of the spectrum below 2 kHz within 15 cents of the shifted partials."""
    seg = y[RATE:-RATE]
    power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    freqs = np.maximum(np.fft.rfftfreq(len(seg), 1 / RATE), 1.0)
    near = np.zeros(freqs.shape, bool)
    for f0 in f0s:
        for k in range(1, 6):
            near |= np.abs(1200 * np.log2(freqs / (k * f0 * ratio))) < 15
    band = freqs < 2000
    return float(power[near & band].sum() / power[band].sum())


@pytest.mark.parametrize("semitones", [3, -4])
def test_the_partials_of_a_close_chord_land_on_the_shifted_pitches(tmp_path, semitones) -> None:
    """G2 + B2 with five partials each: partials 25 Hz apart, closer than a 2048-point phase
    vocoder resolves (it spread a quarter of the energy off them: 0.78)."""
    f0s = (98.0, 123.5)
    out = shifted(tmp_path, harmonic(6.0, f0s), semitones)
    assert share_on_partials(out, f0s, 2 ** (semitones / 12)) > 0.9


def test_a_drum_hit_stays_sharp(tmp_path) -> None:
    """Noise bursts with an instant attack: little energy smeared ahead of the hit (the phase
    vocoder put it -5 dB under the hit) and a rise under 10 ms (it took 20 ms)."""
    rng = np.random.default_rng(0)
    x = np.zeros(6 * RATE, np.float32)
    n = int(0.15 * RATE)
    burst = 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.02 * RATE))
    onsets = np.arange(RATE // 4, len(x) - n, RATE // 2)
    for onset in onsets:
        x[onset : onset + n] += burst.astype(np.float32)
    out = shifted(tmp_path, x, 3)

    w = int(0.03 * RATE)
    pre_db, rise_ms = [], []
    for onset in onsets[1:-1]:
        before = np.mean(out[onset - w - RATE // 200 : onset - RATE // 200] ** 2)
        pre_db.append(10 * np.log10(before / np.mean(out[onset : onset + w] ** 2)))
        env = np.convolve(out[onset - w : onset + w] ** 2, np.ones(64) / 64, "same")
        rise = np.argmax(env > 0.9 * env.max()) - np.argmax(env > 0.1 * env.max())
        rise_ms.append(1000 * rise / RATE)
    assert np.median(pre_db) < -12
    assert np.median(rise_ms) < 10


def test_a_steady_tone_has_no_seam_across_the_old_chunk_joins(tmp_path) -> None:
    """33 s of one steady harmonic tone: its 10 ms loudness stays within 1.5 dB of its median
    all along, through 29-30 s where 30 s chunks with 1 s crossfades joined (two pieces whose
    partials' phases disagree dipped there by up to 10 dB)."""
    rate = 22050
    out = shifted(tmp_path, harmonic(33.0, (220.0,), rate), 3, rate)
    n = rate // 100
    frames = out[: len(out) // n * n].reshape(-1, n)
    env = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)[50:-50]
    assert np.max(np.abs(env - np.median(env))) < 1.5


def test_cancel_stops_the_shift(tmp_path) -> None:
    source = tmp_path / "in.wav"
    sf.write(source, harmonic(20.0, (220.0,)), RATE, subtype="FLOAT")
    with pytest.raises(JobCanceled):
        shift_pitch(source, tmp_path / "out.wav", 3, lambda done: False)
