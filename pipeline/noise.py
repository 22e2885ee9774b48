"""A noise estimate that needs no pauses: minimum statistics over a magnitude spectrum.

Stationary noise (hiss, hum, room tone, an air conditioner, a crowd) sits under the whole
recording, while a voice comes and goes in every frequency band: between its harmonics,
when the pitch moves, in consonants and breaths. So each band's quietest moments (a low
percentile over time of its power) are noise alone, even in a take with no pause at all, and
the lowest such band in a small neighbourhood stands in for a band a held note never leaves.
The estimate is the total power over that floor, in dB: the ratio of the vocal to the
steady noise under it, like the SNR of a vocal track mixed with a noise track.

A low percentile of Gaussian noise's power sits under its mean by a fixed factor, corrected
here; a non-stationary noise (music, a few talkers) is partly read as signal, so those
come out somewhat cleaner than they are.
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import grey_opening
from scipy.stats import gamma

FRAME_SECONDS = 0.05  # 20 Hz bands: the gaps between a singer's harmonics
SMOOTH_FRAMES = 4  # power averaged over groups of this many frames before the percentile
FLOOR_PERCENTILE = 5.0
NEIGHBOUR_HZ = 150.0  # a held note's harmonic borrows the floor of a band this close
MAX_SNR_DB = 60.0
LOW_HZ = 70.0  # below a sung fundamental: bass, kick drum, rumble
# At most this much of a file, as groups of SMOOTH_FRAMES frames spread evenly over it, is
# kept for the estimate: a percentile of 150 groups is as steady as one of thousands, and the
# memory and time stay bounded whatever the length.
SUBSET_SECONDS = 30.0


def frame_length(rate: int) -> int:
    """Samples per analysis frame (also the loudness meter's: two make its 100 ms step)."""
    return max(64, round(rate * FRAME_SECONDS))


@dataclass(frozen=True)
class Spectrum:
    """Per-band power of non-overlapping frames, kept small: float32, one row per frame."""

    rate: int
    frame: int
    power: np.ndarray  # (frames, bands)


def hann_power(spectra: np.ndarray, frame: int) -> np.ndarray:
    """(frames, bands) power of the Hann-windowed frames, from their rectangular-window
    rfft (frames, bands): the periodic Hann window is a three-tap convolution across bands,
    so no second FFT is needed. Scaled like a mean square per band."""
    half = 0.5 * spectra
    hann = half.copy()
    hann[:, 1:-1] -= 0.25 * (spectra[:, :-2] + spectra[:, 2:])
    hann[:, 0] -= 0.5 * spectra[:, 1].real  # the bin below 0 is the conjugate of bin 1
    last = spectra.shape[1] - 1
    mirror = spectra[:, last - 1] if frame % 2 == 0 else spectra[:, last]
    hann[:, last] = half[:, last] - 0.25 * (spectra[:, last - 1] + np.conj(mirror))
    power = hann.real**2 + hann.imag**2
    return (power / (3 * frame / 8 * frame / 2)).astype(np.float32)


class SubsetSpectrum:
    """Keeps the Hann power spectra of groups of frames spread evenly over the file, at most
    `SUBSET_SECONDS` of them, from the per-frame FFTs the loudness meter computes anyway."""

    def __init__(self, rate: int, frame: int, expected_frames: int) -> None:
        self.rate = rate
        self.frame = frame
        budget = max(1, int(SUBSET_SECONDS * rate / frame) // SMOOTH_FRAMES)
        groups = -(-max(expected_frames, 1) // SMOOTH_FRAMES)
        self.stride = max(1, -(-groups // budget))
        self.rows: list[np.ndarray] = []

    def add(self, first: int, spectra: np.ndarray) -> None:
        """`spectra`: (channels, frames, bands) rfft of consecutive frames from index `first`."""
        groups = (first + np.arange(spectra.shape[1])) // SMOOTH_FRAMES
        keep = groups % self.stride == 0
        if not keep.any():
            return
        chosen = spectra[:, keep] if not keep.all() else spectra
        mono = chosen[0]
        for channel in chosen[1:]:
            mono = mono + channel  # the mean, scaled below: cheaper than a reduction
        self.rows.append(hann_power(mono, self.frame) / np.float32(chosen.shape[0] ** 2))

    def spectrum(self) -> Spectrum:
        bands = self.frame // 2 + 1
        power = np.concatenate(self.rows) if self.rows else np.zeros((0, bands), np.float32)
        return Spectrum(self.rate, self.frame, power)


def _percentile_bias() -> float:
    """Where the chosen percentile of Gaussian noise's band power falls, as a share of its
    mean: a band's power in one frame is exponential, a mean of `SMOOTH_FRAMES` of them gamma."""
    k = SMOOTH_FRAMES
    return float(gamma.ppf(FLOOR_PERCENTILE / 100, a=k, scale=1 / k))


BIAS = _percentile_bias()


def noise_floor(spec: Spectrum) -> np.ndarray | None:
    """Each band's noise power (same scale as `spec.power`); None when too short to tell."""
    if spec.power.shape[0] < 4 * SMOOTH_FRAMES:
        return None
    whole = spec.power.shape[0] // SMOOTH_FRAMES * SMOOTH_FRAMES
    bands = spec.power.shape[1]
    smooth = spec.power[:whole].reshape(-1, SMOOTH_FRAMES, bands).mean(axis=1)
    floor = np.percentile(smooth, FLOOR_PERCENTILE, axis=0) / BIAS
    neighbours = max(1, round(NEIGHBOUR_HZ * spec.frame / spec.rate))
    return grey_opening(floor, size=2 * neighbours + 1)


def snr_db(spec: Spectrum) -> float | None:
    """Vocal power over the steady noise under it, in dB (capped at `MAX_SNR_DB`)."""
    floor = noise_floor(spec)
    if floor is None:
        return None
    total = float(spec.power.mean(axis=0).sum())
    noise = float(floor.sum())
    if total <= 0:
        return None
    if noise <= total * 10 ** (-MAX_SNR_DB / 10):
        return MAX_SNR_DB
    return float(10 * np.log10(max(total - noise, noise * 10 ** (-3)) / noise))


def low_band_share(spec: Spectrum) -> float | None:
    """The share of the power below `LOW_HZ`: a voice has little there, a band's bass and
    drums much."""
    if spec.power.shape[0] == 0:
        return None
    mean = spec.power.mean(axis=0)
    total = float(mean.sum())
    if total <= 0:
        return None
    cut = int(LOW_HZ * spec.frame / spec.rate)
    return float(mean[1 : cut + 1].sum() / total)
