"""Synthetic songs with known stems: the tests' sung line (tests/audio.py `voice`) over
chords (three detuned triads) and drums (a kick and a hi-hat on a steady beat)."""

from dataclasses import dataclass

import numpy as np

from tests.audio import voice


@dataclass
class Song:
    vocals: np.ndarray  # (frames, channels) float32
    instrumental: np.ndarray
    rate: int

    @property
    def mix(self) -> np.ndarray:
        return self.vocals + self.instrumental


def chords(seconds: float, rate: int, level: float = 0.12) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    roots = np.array([130.81, 174.61, 196.0, 146.83])  # C F G D, two seconds each
    root = roots[(t // 2).astype(int) % len(roots)]
    tone = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.26, 1.5))
    return (level * tone / 3).astype(np.float32)


def drums(seconds: float, rate: int, bpm: float = 100.0, level: float = 0.25) -> np.ndarray:
    rng = np.random.default_rng(3)
    n, beat = int(seconds * rate), int(60 / bpm * rate)
    out = np.zeros(n, np.float32)
    k = np.arange(int(0.15 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-k * 30)) * k) * np.exp(-k * 20)
    hat = rng.standard_normal(int(0.03 * rate)) * np.exp(-np.arange(int(0.03 * rate)) / 200)
    for i, start in enumerate(range(0, n, beat // 2)):
        hit = kick if i % 2 == 0 else 0.2 * hat
        end = min(n, start + len(hit))
        out[start:end] += level * hit[: end - start]
    return out


def song(seconds: float, rate: int = 44100, channels: int = 2, seed: int = 0) -> Song:
    sung = voice(seconds, rate, 1, f0=262.0, level=0.25, seed=seed)[:, 0]
    band = chords(seconds, rate) + drums(seconds, rate)
    if channels == 2:  # the voice in the middle, the chords a little left, the drums right
        vocals = np.stack([sung, sung], axis=1)
        rest = np.stack(
            [
                chords(seconds, rate) * 1.2 + drums(seconds, rate) * 0.8,
                chords(seconds, rate) * 0.8 + drums(seconds, rate) * 1.2,
            ],
            axis=1,
        )
    else:
        vocals, rest = sung[:, None], band[:, None]
    return Song(vocals.astype(np.float32), rest.astype(np.float32), rate)
