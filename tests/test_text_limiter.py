"""The spoken line's loudness normalisation never clips: a quiet line with sharp peaks (the
crest factor a converted voice's plosives and clicks give) reaches the loudness target, and
its true peak, measured by an independent meter (ffmpeg's `ebur128` with `peak=true`), stays
under the ceiling in the WAV and the MP3 the job writes. Before the limiter, the line was
turned down as a whole for its loudest peak and ended far under the target."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gpu.text.limiter import limit
from gpu.text.speak import OUTPUT_RATE, PEAK_CEILING_DB, TARGET_LUFS, normalise, write_outputs

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated loudness LUFS, true peak dBTP) as ffmpeg's ebur128 filter reports them."""
    run = subprocess.run(
        ["ffmpeg", "-nostats", "-hide_banner", "-i", str(path),
         "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = run.stderr[run.stderr.rindex("Summary:") :]
    loud = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return loud, peak


def peaky_line(seconds: float = 6.0, rate: int = OUTPUT_RATE) -> np.ndarray:
    """A quiet voiced line (a 150 Hz buzz with harmonics, syllable-shaped) with a sharp click
    every half second: about -33 LUFS and a peak near full scale."""
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
    line = 0.02 * voiced * syllables + 0.002 * rng.standard_normal(len(t))
    for start in range(rate // 4, len(t) - 200, rate // 2):
        line[start : start + 60] += 0.9 * np.hanning(60) * np.sign(rng.standard_normal(60))
    return line.astype(np.float32)


def test_a_peaky_line_reaches_the_target_and_never_clips(tmp_path: Path) -> None:
    line = peaky_line()
    out, lufs = normalise(line, OUTPUT_RATE, tmp_path)
    assert lufs == pytest.approx(TARGET_LUFS, abs=0.5)
    wav, mp3 = write_outputs(out, tmp_path)
    wav_lufs, wav_peak = ebur128(wav)
    assert wav_lufs == pytest.approx(TARGET_LUFS, abs=0.5)
    assert wav_peak <= PEAK_CEILING_DB
    mp3_lufs, mp3_peak = ebur128(mp3)
    assert mp3_lufs == pytest.approx(TARGET_LUFS, abs=0.5)
    assert mp3_peak < 0.0  # the ceiling's headroom absorbs the encoder's overshoot
    assert len(out) == len(line)


def test_the_limiter_leaves_a_line_under_the_ceiling_alone_and_holds_an_inter_sample_peak() -> None:
    rate = OUTPUT_RATE
    quiet = 0.1 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate).astype(np.float32)
    assert np.array_equal(limit(quiet, rate, PEAK_CEILING_DB), quiet)
    # a sine at a quarter of the rate, phased so every sample misses its crest by 3 dB: the
    # sample peak is under the ceiling, the true peak over it
    n = np.arange(rate)
    tricky = (0.95 * np.sin(np.pi / 2 * n + np.pi / 4)).astype(np.float32)
    assert float(np.abs(tricky).max()) < 10 ** (PEAK_CEILING_DB / 20)
    held = limit(tricky, rate, PEAK_CEILING_DB)
    from gpu.text.limiter import true_peak_envelope

    assert float(true_peak_envelope(held, rate).max()) <= 10 ** (PEAK_CEILING_DB / 20) + 1e-6
