"""Integrated loudness (ITU-R BS.1770-4, as pyloudnorm measures it) and true peak, read from
a file block by block so a 10-minute song is never in memory whole.

Loudness: pyloudnorm's own K-weighting stages, run with carried filter state; the mean
square of every 100 ms step is kept (6,000 numbers for 10 minutes) and the 400 ms gating
blocks (75 % overlap) are the means of four consecutive steps, gated at -70 LUFS and then
10 LU below the ungated loudness, as pyloudnorm's `Meter.integrated_loudness` does.
True peak: the signal four times oversampled (soxr's streaming resampler) and its largest magnitude,
the BS.1770 Annex 2 method.
"""

from pathlib import Path

import numpy as np
import soundfile as sf

BLOCK_FRAMES = 65536
OVERSAMPLE = 4
CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)
ABSOLUTE_GATE = -70.0
SILENT = float("-inf")


def _loudness(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10 * np.log10(power)


def integrated_loudness(path: Path) -> float:
    """LUFS of the file (-inf when it is silent or shorter than one 400 ms block)."""
    import pyloudnorm
    from scipy.signal import lfilter, lfilter_zi

    with sf.SoundFile(path) as src:
        rate, channels = src.samplerate, src.channels
        stages = list(pyloudnorm.Meter(rate)._filters.values())
        states = [[lfilter_zi(s.b, s.a) * 0.0 for s in stages] for _ in range(channels)]
        step = int(0.1 * rate)
        carry = np.zeros((0, channels))
        steps: list[np.ndarray] = []
        for block in src.blocks(BLOCK_FRAMES, dtype="float64", always_2d=True):
            weighted = np.empty_like(block)
            for ch in range(channels):
                x = block[:, ch]
                for k, stage in enumerate(stages):
                    x, states[ch][k] = lfilter(stage.b, stage.a, x, zi=states[ch][k])
                    x = x * stage.passband_gain
                weighted[:, ch] = x
            joined = np.concatenate([carry, weighted])
            whole = len(joined) // step * step
            steps.append((joined[:whole] ** 2).reshape(-1, step, channels).mean(axis=1))
            carry = joined[whole:]
    per_step = np.concatenate(steps) if steps else np.zeros((0, channels))
    if len(per_step) < 4:
        return SILENT
    blocks = np.lib.stride_tricks.sliding_window_view(per_step, 4, axis=0).mean(axis=-1)
    gains = np.array(CHANNEL_GAINS[:channels])
    power = blocks @ gains  # (blocks,)
    loud = _loudness(power)
    gated = power[loud >= ABSOLUTE_GATE]
    if not len(gated):
        return SILENT
    relative = _loudness(np.array(gated.mean())) - 10.0
    kept = power[(loud > relative) & (loud > ABSOLUTE_GATE)]
    return float(_loudness(np.array(kept.mean()))) if len(kept) else SILENT


def true_peak(path: Path) -> float:
    """The largest magnitude of the file four times oversampled (linear, 1.0 = full scale)."""
    import soxr

    peak = 0.0
    with sf.SoundFile(path) as src:
        rate, channels = src.samplerate, src.channels
        stream = soxr.ResampleStream(rate, rate * OVERSAMPLE, channels, dtype="float32")
        for block in src.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
            peak = max(peak, float(np.abs(stream.resample_chunk(block)).max(initial=0.0)))
        tail = stream.resample_chunk(np.zeros((0, channels), np.float32), last=True)
        return max(peak, float(np.abs(tail).max(initial=0.0)))


def db(linear: float) -> float:
    return 20 * float(np.log10(max(linear, 1e-12)))
