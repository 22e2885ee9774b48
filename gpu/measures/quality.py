"""Objective quality of a voice model, as pure functions of audio: how much its conversions
sound like the training singer (SECS), whether they keep the melody (F0 correlation and RMSE
in cents), and how far they are from the original (mel-cepstral distortion).

The tools are the ones the workers already load, with shipped weights: Resemblyzer's encoder
(through `gpu.measures.singers`, the one-singer check's loader) and torchfcpe (through
`gpu.measures.f0`, the tracker training and conversion use). `tool_versions()` records what
measured a report, so
two reports are only compared when their tools agree.
"""

from dataclasses import dataclass
from importlib import metadata

import numpy as np
from scipy.fft import dct

F0_HOP_SECONDS = 0.01  # pitch contours on a 10 ms grid, the tracker's own
MIN_SHARED_VOICED = 20  # frames voiced in both; fewer says nothing about a melody
MCD_ORDER = 24  # mel-cepstral coefficients 1..24 (c0, the level, is left out)
MCD_MELS = 80
MCD_FFT_SECONDS = 0.025
MCD_HOP_SECONDS = 0.005
MCD_FLOOR_DB = 40.0  # frames quieter than the original's loudest by more: pauses, not compared
MCD_RANGE_DB = 80.0  # mel bands this far below the original's loudest count as this far
TOOLS = ("resemblyzer", "torchfcpe", "so-vits-svc-fork", "librosa", "scipy")


def tool_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in TOOLS}


# Speaker similarity ----------------------------------------------------------------------


def embedding(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resemblyzer's unit-length speaker embedding of mono audio, prepared as the one-singer
    check prepares its files (`gpu.measures.singers.encoder_input`: 16 kHz, long pauses cut,
    RMS-normalised), so every similarity the product reports is on one scale."""
    from gpu.measures.singers import encoder, encoder_input

    voice = encoder_input(audio, rate)
    return np.asarray(encoder().embed_utterance(voice), dtype=np.float64)


def centroid(embeddings: list[np.ndarray]) -> np.ndarray:
    """The mean direction of several embeddings, unit length."""
    mean = np.mean(np.stack(embeddings), axis=0)
    return mean / np.linalg.norm(mean)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# Melody --------------------------------------------------------------------------------


def f0_contour(audio: np.ndarray, rate: int) -> np.ndarray:
    """F0 in Hz every 10 ms by torchfcpe, 0 where unvoiced."""
    from gpu.measures.f0 import track

    hop = max(1, round(rate * F0_HOP_SECONDS))
    return track(np.asarray(audio, np.float32), rate, hop, "fcpe")


@dataclass(frozen=True)
class Melody:
    corr: float | None  # Pearson correlation of the two contours in cents
    rmse_cents: float | None  # after removing the expected shift
    voiced_frames: int  # frames voiced in both, the ones compared


def melody(f0_in: np.ndarray, f0_out: np.ndarray, shift_cents: float = 0.0) -> Melody:
    """How well `f0_out` follows `f0_in` moved by `shift_cents`, on frames voiced in both.
    None where too few frames are voiced in both to tell (or a contour is flat)."""
    n = min(len(f0_in), len(f0_out))
    a, b = np.asarray(f0_in[:n], np.float64), np.asarray(f0_out[:n], np.float64)
    both = (a > 0) & (b > 0)
    count = int(both.sum())
    if count < MIN_SHARED_VOICED:
        return Melody(None, None, count)
    cents_in = 1200 * np.log2(a[both] / 440.0) + shift_cents
    cents_out = 1200 * np.log2(b[both] / 440.0)
    rmse = float(np.sqrt(np.mean((cents_out - cents_in) ** 2)))
    if np.std(cents_in) == 0 or np.std(cents_out) == 0:
        return Melody(None, rmse, count)
    return Melody(float(np.corrcoef(cents_in, cents_out)[0, 1]), rmse, count)


# Reconstruction ------------------------------------------------------------------------


def mel_power(audio: np.ndarray, rate: int) -> np.ndarray:
    """An 80-band mel power spectrogram, 25 ms windows every 5 ms (bands x frames)."""
    import librosa

    return librosa.feature.melspectrogram(
        y=np.asarray(audio, np.float32),
        sr=rate,
        n_fft=1 << int(np.ceil(np.log2(MCD_FFT_SECONDS * rate))),
        hop_length=max(1, round(MCD_HOP_SECONDS * rate)),
        win_length=round(MCD_FFT_SECONDS * rate),
        n_mels=MCD_MELS,
        power=2.0,
    )


def mel_cepstrum(power: np.ndarray, floor: float) -> np.ndarray:
    """Mel-cepstral coefficients c1..c24 per frame (frames x 24): the cosine transform of the
    natural-log mel magnitude, scaled as a cepstrum, c_n = (1/M) sum_m log|X_m| cos(pi n (m+1/2)/M).
    Bands below `floor` are read at the floor, so empty bands do not dominate."""
    log_magnitude = 0.5 * np.log(np.maximum(power, floor))
    cepstrum = dct(log_magnitude, type=2, axis=0) / (2 * power.shape[0])
    return cepstrum[1 : MCD_ORDER + 1].T


def mcd(original: np.ndarray, converted: np.ndarray, rate: int) -> float | None:
    """Mel-cepstral distortion in dB, frame by frame (a conversion keeps its input's length,
    so no time warping), over the frames where the original is within 40 dB of its loudest.
    MCD = 10/ln10 · sqrt(2 Σ_d (c_d - ĉ_d)²), averaged over frames; None for silence."""
    p_a, p_b = mel_power(original, rate), mel_power(converted, rate)
    n = min(p_a.shape[1], p_b.shape[1])
    peak = float(p_a.max(initial=0.0))
    if n == 0 or peak <= 0:
        return None
    floor = peak * 10 ** (-MCD_RANGE_DB / 10)
    level = 10 * np.log10(np.maximum(p_a[:, :n].sum(axis=0), floor))
    loud = level > level.max() - MCD_FLOOR_DB
    diff = mel_cepstrum(p_a[:, :n], floor)[loud] - mel_cepstrum(p_b[:, :n], floor)[loud]
    per_frame = 10 / np.log(10) * np.sqrt(2 * np.sum(diff**2, axis=1))
    return float(np.mean(per_frame))
