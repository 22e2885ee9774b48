"""Synthetic singing with a known F0, for the pitch tests and `bench/pitch.py`.

A melody of held notes over about an octave and a half of a voice's range, with portamento
between notes, vibrato that sets in after the onset, phrase gaps with a breath in them, a
vowel-like formant envelope over the harmonics, and the truth at the fork's frame grid (44.1
kHz, hop 512). Degradations a real input brings: white noise at an SNR, backing-track bleed
(what a separated stem keeps of the mix), a room. Frames near a voicing change are not
scored: where a note starts or stops is a matter of definition there, not of tracking.
"""

from dataclasses import dataclass

import numpy as np

RATE = 44100
HOP = 512
CONTROL = 128  # samples per step of the slowly varying harmonic gains
EDGE_SECONDS = 0.03  # frames this close to an onset or an offset are not scored


@dataclass(frozen=True)
class Singer:
    name: str
    low_hz: float  # the melody's lowest note; it spans about 18 semitones up from here
    formants: tuple[tuple[float, float], ...]  # (centre Hz, bandwidth Hz) of the vowel


SINGERS = (
    Singer("bass", 82.0, ((600, 90), (1040, 110), (2250, 160), (2450, 200))),
    Singer("tenor", 130.0, ((650, 90), (1080, 110), (2650, 160), (2900, 200))),
    Singer("alto", 196.0, ((800, 100), (1150, 120), (2800, 170), (3500, 200))),
    Singer("soprano", 330.0, ((900, 110), (1300, 130), (2900, 180), (3800, 220))),
)


@dataclass(frozen=True)
class Take:
    audio: np.ndarray  # float32 mono at RATE
    f0: np.ndarray  # Hz per frame at HOP, 0 where unvoiced
    scored: np.ndarray  # bool per frame: away from voicing changes


def _envelope(freqs: np.ndarray, formants: tuple[tuple[float, float], ...]) -> np.ndarray:
    """A vowel's spectral envelope at the given frequencies: resonances over a -6 dB/oct tilt."""
    gain = np.zeros_like(freqs)
    for centre, width in formants:
        gain += 1.0 / (1.0 + ((freqs - centre) / (width / 2)) ** 2)
    return (0.15 + gain) / np.maximum(freqs / 200.0, 1.0)


def sing(singer: Singer, seconds: float, seed: int = 0, vibrato_cents: float = 35.0) -> Take:
    """A melody over 1.5 octaves from `singer.low_hz`: notes of 0.25-0.9 s with 80 ms glides,
    5.5 Hz vibrato from 150 ms into each note, a 0.35-0.6 s breath every 3-4 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    semis = np.zeros(n)
    voiced = np.zeros(n, dtype=bool)
    vibrato_on = np.zeros(n)
    position, phrase_left, last = 0, rng.uniform(3.0, 4.0), float(rng.integers(0, 18))
    while position < n:
        length = int(rng.uniform(0.25, 0.9) * RATE)
        note = float(np.clip(last + rng.choice([-5, -3, -2, -1, 1, 2, 3, 4, 5, 7]), 0, 18))
        end = min(n, position + length)
        glide = min(int(0.08 * RATE), end - position)
        semis[position:end] = note
        semis[position : position + glide] = last + (note - last) * np.linspace(0, 1, glide)
        voiced[position:end] = True
        since = np.arange(end - position) / RATE
        vibrato_on[position:end] = np.clip((since - 0.15) / 0.2, 0, 1)
        last, position = note, end
        phrase_left -= length / RATE
        if phrase_left <= 0:
            position += int(rng.uniform(0.35, 0.6) * RATE)  # a breath
            phrase_left = rng.uniform(3.0, 4.0)
    vibrato = vibrato_on * vibrato_cents / 100 * np.sin(2 * np.pi * 5.5 * t)
    f0 = singer.low_hz * 2 ** ((semis + vibrato) / 12)
    f0[~voiced] = 0.0
    phase = 2 * np.pi * np.cumsum(np.where(voiced, f0, 0.0)) / RATE
    wave = np.zeros(n)
    coarse = np.where(voiced, f0, singer.low_hz)[::CONTROL]  # the envelope moves slowly
    for k in range(1, 60):
        gain = np.where(k * coarse < 8000, _envelope(k * coarse, singer.formants), 0.0)
        wave += np.repeat(gain, CONTROL)[:n] * np.sin(k * phase)
    # note edges: 25 ms fades, so a glide-less gap is not a click
    fade = np.convolve(voiced.astype(float), np.ones(int(0.025 * RATE)) / (0.025 * RATE), "same")
    sung = wave * fade
    breath = _breath(voiced, rng)
    audio = 0.3 * sung / np.abs(sung).max() + breath
    frames = np.arange(n // HOP) * HOP
    truth = f0[frames]
    change = np.flatnonzero(np.diff(voiced.astype(int))) + 1
    near = np.zeros(len(frames), dtype=bool)
    for edge in change:
        near |= np.abs(frames - edge) < EDGE_SECONDS * RATE
    return Take(audio.astype(np.float32), truth, ~near)


def _breath(voiced: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft band-limited noise in the phrase gaps: unvoiced, and the truth says so."""
    from scipy.signal import butter, sosfilt

    noise = sosfilt(
        butter(2, [500, 4000], "bandpass", fs=RATE, output="sos"), rng.standard_normal(len(voiced))
    )
    return 0.01 * noise / np.abs(noise).max() * (~voiced)


def add_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at `snr_db` below the signal's power."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(audio.astype(np.float64) ** 2))
    noise = rng.standard_normal(len(audio)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


CHORDS = ((110.0, 138.6, 164.8), (98.0, 123.5, 146.8), (130.8, 164.8, 196.0), (87.3, 110.0, 130.8))


def add_accompaniment(audio: np.ndarray, level_db: float) -> np.ndarray:
    """Backing-track bleed, as a separated vocal stem carries it: struck piano-like chords
    with their bass note an octave down, a new chord every half second, `level_db` relative
    to the voice's power."""
    n = len(audio)
    step = int(0.5 * RATE)
    t = np.arange(step) / RATE
    bed = np.zeros(n)
    for i, start in enumerate(range(0, n, step)):
        chord = CHORDS[(i // 4) % len(CHORDS)]
        struck = sum(
            np.sin(2 * np.pi * k * f * t) / k**1.5
            for f in (*chord, chord[0] / 2)
            for k in range(1, 8)
        )
        piece = struck * np.exp(-3 * t)
        bed[start : start + step] = piece[: n - start]
    power = float(np.mean(audio.astype(np.float64) ** 2))
    bed *= np.sqrt(power / np.mean(bed**2) * 10 ** (level_db / 10))
    return (audio + bed).astype(np.float32)


def reverberate(
    audio: np.ndarray, rt60: float = 0.6, wet: float = 0.5, seed: int = 0
) -> np.ndarray:
    """A room: exponentially decaying noise as the impulse response, mixed with the dry."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    length = int(rt60 * RATE)
    decay = np.exp(-6.9 * np.arange(length) / length)  # -60 dB at rt60
    response = rng.standard_normal(length) * decay
    response /= np.sqrt(np.sum(response**2))
    tail = fftconvolve(audio, response)[: len(audio)]
    mixed = (1 - wet) * audio + wet * tail
    return (mixed * (np.abs(audio).max() / np.abs(mixed).max())).astype(np.float32)


def errors(estimate: np.ndarray, take: Take) -> dict[str, float]:
    """Gross pitch error (share of frames voiced in both that are > 50 cents off), median
    and 95th-percentile cents error of those frames, and the voicing error (share of scored
    frames whose voiced/unvoiced decision differs from the truth)."""
    size = min(len(estimate), len(take.f0))
    est, ref, scored = estimate[:size], take.f0[:size], take.scored[:size]
    both = scored & (est > 0) & (ref > 0)
    cents = 1200 * np.abs(np.log2(est[both] / ref[both])) if both.any() else np.array([np.inf])
    return {
        "gpe": float(np.mean(cents > 50)),
        "median_cents": float(np.median(cents)),
        "p95_cents": float(np.percentile(cents, 95)),
        "voicing_error": float(np.mean((est[scored] > 0) != (ref[scored] > 0))),
    }
