"""Calibration audio the tests make themselves: source-filter singing with vibrato, espeak-ng
speech, and white, pink and babble-like noise mixed in at a known SNR. Nothing is downloaded.

The SNR of a mix is the power of the whole vocal track over the power of the whole noise track,
pauses included, which is what the probe's estimate reports.
"""

import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter, resample_poly

RATE = 44100
# (F1, F2, F3) of a few sung vowels, Hz
VOWELS = [(800, 1150, 2900), (400, 1600, 2700), (300, 870, 2250), (500, 1700, 2500)]


def _resonator(freq: float, bandwidth: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.exp(-np.pi * bandwidth / rate)
    theta = 2 * np.pi * freq / rate
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a  # unity gain at DC keeps levels comparable


def singing(
    seconds: float,
    *,
    style: str = "legato",
    f0: float = 220.0,
    seed: int = 0,
    rate: int = RATE,
    level: float = 0.25,
) -> np.ndarray:
    """A sung line: a glottal-like harmonic source (-12 dB/octave) with 5.5 Hz vibrato of
    ±40 cents, gliding between notes of a melody, through three vowel formants.

    `style`: "legato" (continuous, no pause at all), "phrases" (3 s phrases, 1 s breaths),
    "staccato" (short notes with gaps)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    note_len = 0.3 if style == "staccato" else 0.8
    notes = f0 * 2 ** (rng.integers(-5, 8, size=int(seconds / note_len) + 2) / 12)
    index = np.minimum((t / note_len).astype(int), notes.size - 1)
    glide = int(0.05 * rate)
    pitch = uniform_filter1d(notes[index], glide)
    pitch *= 2 ** (40 / 1200 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    # sin(k·x) by the recurrence sin((k+1)x) = 2cos(x)sin(kx) - sin((k-1)x): no sin per harmonic
    two_cos, previous, current = 2 * np.cos(phase), np.zeros(n), np.sin(phase)
    source = current.copy()
    for k in range(2, int(8000 / pitch.min()) + 1):
        previous, current = current, two_cos * current - previous
        source += current / k**2
    voice = np.zeros(n)
    vowel_len = int(note_len * 2 * rate)
    for start in range(0, n, vowel_len):
        piece = source[start : start + vowel_len + 2048]
        f1, f2, f3 = VOWELS[rng.integers(len(VOWELS))]
        out = piece
        for freq, bw in ((f1, 80), (f2, 100), (f3, 150)):
            out = lfilter(*_resonator(freq, bw, rate), out)
        fade = np.minimum(
            1, np.minimum(np.arange(out.size), out.size - 1 - np.arange(out.size)) / 1024
        )
        voice[start : start + out.size] += out * fade
    envelope = np.ones(n)
    if style == "phrases":
        envelope = (np.sin(2 * np.pi * t / 4.0) > -0.7).astype(float)
    elif style == "staccato":
        envelope = ((t % note_len) < 0.6 * note_len).astype(float)
    smooth = int(0.02 * rate)
    envelope = uniform_filter1d(envelope, smooth)
    voice *= envelope
    return (level * voice / np.max(np.abs(voice))).astype(np.float32)


SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the band plays on.",
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells.",
    "Peter Piper picked a peck of pickled peppers from the garden behind the old house.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood all day long.",
    "A journey of a thousand miles begins with a single step taken in the early morning.",
    "Every morning the baker opens the shop and the smell of fresh bread fills the street.",
]


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


@cache
def _espeak(text: str, voice: str, speed: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        samples, rate = sf.read(out, dtype="float64")
    assert rate == 22050, rate
    return resample_poly(samples, 2, 1)


def speech(
    seconds: float,
    *,
    voice: str = "en+m3",
    seed: int = 0,
    speed: int = 150,
    level: float = 0.25,
    pauses: bool = True,
) -> np.ndarray:
    """espeak-ng reading sentences in one voice, end to end; `pauses=False` cuts the quiet
    stretches between sentences out."""
    rng = np.random.default_rng(seed)
    pieces, total = [], 0
    while total < seconds * RATE:
        said = _espeak(SENTENCES[rng.integers(len(SENTENCES))], voice, speed)
        if not pauses:
            loud = np.flatnonzero(np.abs(said) > 0.02 * np.abs(said).max())
            said = said[loud[0] : loud[-1]]
        pieces.append(said)
        total += said.size
    line = np.concatenate(pieces)[: int(seconds * RATE)]
    return (level * line / np.max(np.abs(line))).astype(np.float32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise shaped to 1/f power (-3 dB per octave) from 20 Hz up."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    audible = freqs >= 20.0  # pink over the audible band, as a noise generator makes it
    spectrum[audible] /= np.sqrt(freqs[audible] / 20.0)
    spectrum[~audible] = 0
    return np.fft.irfft(spectrum, n)


def babble_noise(n: int, rng: np.random.Generator, talkers: int = 32) -> np.ndarray:
    """Crowd babble (a canteen, a bar): many talkers at once, espeak-ng voices at several
    speeds when installed, synthetic sung lines otherwise, each started at a random point.
    With only a few talkers babble has gaps, and the estimate reads it as cleaner than it is
    (by about 3.5 dB with 16 talkers, 5 dB with 8)."""
    voices = ["en+m1", "en+f2", "en+m3", "en+f4", "en+m7", "en+f1", "en+m2", "en+f3"]
    mix = np.zeros(n)
    for i in range(talkers):
        if have_espeak():
            voice, speed = voices[i % len(voices)], 130 + 20 * (i // len(voices))
            line = speech(n / RATE + 1, voice=voice, speed=speed, seed=100 + i, pauses=False)
        else:
            line = singing(n / RATE + 1, f0=110 * 2 ** (i / 4), seed=100 + i, style="phrases")
        line = np.roll(line[:n], rng.integers(n)).astype(np.float64)
        mix += line / np.sqrt(np.mean(line**2))
    return mix


NOISES = {"white": white_noise, "pink": pink_noise, "babble": babble_noise}


def mix_at_snr(vocal: np.ndarray, noise_kind: str, snr_db: float, seed: int = 0) -> np.ndarray:
    """`vocal` plus noise scaled so that vocal power / noise power is `snr_db`."""
    rng = np.random.default_rng(seed)
    vocal = vocal.astype(np.float64).reshape(-1)
    noise = NOISES[noise_kind](vocal.size, rng)
    noise *= np.sqrt(np.mean(vocal**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    mixed = vocal + noise
    peak = np.max(np.abs(mixed))
    return (mixed * min(1.0, 0.9 / peak)).astype(np.float32)[:, None]
