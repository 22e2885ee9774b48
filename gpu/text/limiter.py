"""A look-ahead true-peak limiter for spoken lines, so loudness normalisation reaches its
target without clipping: the gain each sample needs to keep its true peak (the signal four
times oversampled, as BS.1770 measures it) under the ceiling is spread over the samples around
it (a moving minimum, then a moving average no wider, so the smoothed gain is never above
what any sample needs) and applied. Peaks are turned down over a few milliseconds rather than
the whole line being turned down for its loudest click, which is what held the level under the
target before.
"""

import numpy as np

from gpu.measures.loudness import OVERSAMPLE  # BS.1770's true peak: four times oversampled

LOOKAHEAD_SECONDS = 0.005  # the gain starts to fall this long before a peak
# ... and stays down this long after it, so it never moves within a voice's pitch period (a
# gain wobbling at 100-300 Hz is heard as distortion)
HOLD_SECONDS = 0.05


def true_peak_envelope(audio: np.ndarray, rate: int) -> np.ndarray:
    """Per sample, the largest magnitude among its four oversampled points (and itself)."""
    import soxr

    audio = np.asarray(audio, np.float32)
    n = len(audio)
    if n == 0:
        return np.zeros(0, np.float32)
    up = soxr.resample(audio, rate, rate * OVERSAMPLE, quality="HQ")
    up = np.pad(up[: n * OVERSAMPLE], (0, max(0, n * OVERSAMPLE - len(up))))
    return np.maximum(np.abs(up).reshape(n, OVERSAMPLE).max(axis=1), np.abs(audio))


def limit(audio: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    """The audio with its true peak held at or under `ceiling_db` (dBTP)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    audio = np.asarray(audio, np.float32)
    if audio.size == 0:
        return audio
    ceiling = 10 ** (ceiling_db / 20)
    envelope = true_peak_envelope(audio, rate)
    need = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    if need.min() >= 1.0:
        return audio
    ahead = max(2, int(LOOKAHEAD_SECONDS * rate))
    hold = max(ahead, int(HOLD_SECONDS * rate))
    # each sample's gain: the least that any sample from `hold` before it to `ahead` after it
    # needs (with this origin minimum_filter1d's window is [n - hold, n + ahead]), so the gain
    # falls `ahead` before a peak and stays down `hold` after it
    size = hold + ahead + 1
    gain = minimum_filter1d(need, size=size, mode="nearest", origin=hold - size // 2)
    # ramps no wider than the look-ahead, so the average never rises above any need
    gain = uniform_filter1d(gain, size=2 * (ahead // 2) + 1, mode="nearest")
    out = (audio * gain).astype(np.float32)
    # the gain moves slowly against the oversampled points, so what is left over is tiny:
    # a last static trim makes the ceiling exact
    peak = float(true_peak_envelope(out, rate).max(initial=0.0))
    return out if peak <= ceiling else (out * (ceiling / peak)).astype(np.float32)
