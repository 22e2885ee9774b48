"""The range a recording sings in (median and 5-95 % of its voiced F0), for a key-aware
transpose: the training worker measures the F0 its features were built from, the conversion
worker its input, with the job's own tracker through the fork's `compute_f0`.
"""

from pathlib import Path

import numpy as np
import soundfile as sf

from schemas.pitch import PitchRange

MIN_VOICED_SECONDS = 1.0  # less than this says nothing about a range
BLOCK_SECONDS = 30.0


def from_f0(f0: np.ndarray, frame_seconds: float, method: str) -> PitchRange | None:
    """None when too little of it is voiced to tell."""
    voiced = np.asarray(f0, dtype=np.float64)
    voiced = voiced[voiced > 0]
    if len(voiced) * frame_seconds < MIN_VOICED_SECONDS:
        return None
    p5, median, p95 = np.percentile(voiced, [5, 50, 95])
    return PitchRange(
        median_hz=round(float(median), 2),
        p5_hz=round(float(p5), 2),
        p95_hz=round(float(p95), 2),
        voiced_seconds=round(len(voiced) * frame_seconds, 2),
        method=method,
    )


def of_features(dataset: Path, hop_length: int, rate: int, method: str) -> PitchRange | None:
    """From the `*.data.pt` files training wrote: their F0 where `uv` marks a voiced frame
    (the stored F0 is interpolated through unvoiced gaps)."""
    import torch

    values = []
    for path in sorted(dataset.rglob("*.data.pt")):
        data = torch.load(path, map_location="cpu", weights_only=True)
        f0, uv = data["f0"].numpy(), data["uv"].numpy()
        values.append(f0[uv > 0.5])
    f0_all = np.concatenate(values) if values else np.zeros(0)
    return from_f0(f0_all, hop_length / rate, method)


def of_file(path: Path, method: str, hop_length: int = 512) -> PitchRange | None:
    """A mono file's range, tracked 30 s at a time so a long input never sits in memory."""
    import so_vits_svc_fork.f0 as fork_f0

    values = []
    with sf.SoundFile(path) as src:
        rate = src.samplerate
        for block in src.blocks(int(BLOCK_SECONDS * rate), dtype="float32", always_2d=True):
            mono = block.mean(axis=1)
            if len(mono) < hop_length * 4 or not np.any(mono):
                continue
            f0 = fork_f0.compute_f0(mono, sampling_rate=rate, hop_length=hop_length, method=method)
            values.append(np.asarray(f0)[np.asarray(f0) > 0])
    f0_all = np.concatenate(values) if values else np.zeros(0)
    return from_f0(f0_all, hop_length / rate, method)
