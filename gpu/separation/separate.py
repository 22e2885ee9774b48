"""Vocal separation with Demucs: a song in, its vocal stem and the rest out.

`separate` reads the source in chunks of `CHUNK_SECONDS` that overlap by `OVERLAP_SECONDS`
(gpu/chunked.py); each chunk is resampled to the model's 44.1 kHz (soxr), split by
Demucs (`apply_model`, which segments further at the model's training length), resampled
back, and crossfaded linearly into the previous chunk's tail before it is written. So memory
holds one chunk whatever the song's length, and the output has the source's rate, channel
count and exact length. The instrumental is the sum of the other stems (drums, bass, other).

The model is `htdemucs`, not `htdemucs_ft`: the fine-tuned bag runs four models (one per
stem) for a fraction of a dB more vocal SDR; a cover spends its GPU time on the conversion.
It is loaded from a local Demucs repository in the model cache (`demucs_repo`), where the
image build puts the published weights and offline setups a tiny random HTDemucs
(gpu/separation/weights.py); both load through `demucs.pretrained.get_model(name, repo)`.
"""

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from gpu.chunked import Progress, map_chunks
from gpu.errors import JobFailure

MODEL_NAME = "htdemucs"
MODEL_RATE = 44100
REPO_DIRNAME = "demucs"
VOCALS = "vocals"
CHUNK_SECONDS = 60.0
OVERLAP_SECONDS = 2.0

# A stereo chunk at MODEL_RATE, shape (2, n) → its (vocals, instrumental), each (2, n).
Split = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Separator(Protocol):
    """`separate`'s signature, for the workers that take a separator (tests inject doubles):
    writes the vocal stem and the rest as WAVs at the source's rate and channel count;
    `progress(fraction)` returning False stops it with `JobCanceled`."""

    def __call__(
        self,
        source: Path,
        vocals: Path,
        instrumental: Path,
        *,
        cache_dir: Path,
        device: str,
        progress: Callable[[float], bool] | None = None,
    ) -> None: ...


def demucs_repo(cache_dir: Path) -> Path:
    return cache_dir / REPO_DIRNAME


@cache
def load_model(cache_dir: Path, device: str) -> Any:
    """The separation model from the cache's local repository, once per process and device."""
    from demucs.pretrained import get_model

    repo = demucs_repo(cache_dir)
    if not (repo / f"{MODEL_NAME}.yaml").is_file():  # demucs would sys.exit() on a missing repo
        raise JobFailure(
            "SEPARATOR_UNAVAILABLE",
            "Songs cannot be separated here: the separation model is not installed.",
        )
    model = get_model(MODEL_NAME, repo=repo)
    return model.to(device).eval()


def demucs_split(model: Any, device: str) -> Split:
    """`Split` by a Demucs model (or bag): vocals, and the sum of every other source."""
    import torch
    from demucs.apply import apply_model

    vocal_index = list(model.sources).index(VOCALS)

    def split(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mix = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))[None]
        # shifts=0: the same song separates the same way every time
        with torch.inference_mode():
            stems = apply_model(model, mix, shifts=0, split=True, overlap=0.25, device=device)
        stems = stems[0].float().cpu()  # (sources, 2, n)
        vocals = stems[vocal_index]
        return vocals.numpy(), (stems.sum(dim=0) - vocals).numpy()

    return split


def separate(
    source: Path,
    vocals: Path,
    instrumental: Path,
    *,
    cache_dir: Path,
    device: str,
    progress: Progress | None = None,
) -> None:
    """Writes the vocal stem and the rest (instrumental = sum of the other stems) as float WAVs
    at the source's rate and channel count, streaming in overlapping segments so memory stays
    flat; progress(fraction) returning False stops it by raising gpu.errors.JobCanceled."""
    split = demucs_split(load_model(Path(cache_dir), device), device)
    stream(source, vocals, instrumental, split, progress=progress)


def _to_model(block: np.ndarray, rate: int) -> np.ndarray:
    """(n, channels) at the source's rate → (2, m) at the model's: mono (or a downmix of more
    than two channels) is duplicated, since the model was trained on stereo."""
    import soxr

    stereo = block if block.shape[1] == 2 else np.repeat(block.mean(axis=1, keepdims=True), 2, 1)
    if rate != MODEL_RATE:
        stereo = soxr.resample(stereo, rate, MODEL_RATE, quality="HQ")
    return np.ascontiguousarray(stereo.T, dtype=np.float32)


def _from_model(stem: np.ndarray, rate: int, frames: int, channels: int) -> np.ndarray:
    """(2, m) at the model's rate → (frames, channels) at the source's."""
    import soxr

    out = stem.T
    if rate != MODEL_RATE:
        out = soxr.resample(np.ascontiguousarray(out), MODEL_RATE, rate, quality="HQ")
    if len(out) < frames:
        out = np.pad(out, ((0, frames - len(out)), (0, 0)))
    out = out[:frames]
    if channels != 2:
        out = np.repeat(out.mean(axis=1, keepdims=True), channels, axis=1)
    return out.astype(np.float32)


def stream(
    source: Path,
    vocals: Path,
    instrumental: Path,
    split: Split,
    *,
    progress: Progress | None = None,
    chunk_seconds: float = CHUNK_SECONDS,
    overlap_seconds: float = OVERLAP_SECONDS,
) -> None:
    """The chunked, crossfaded walk over `source` that `separate` runs with Demucs' `split`."""
    rate, channels = sf.info(str(source)).samplerate, sf.info(str(source)).channels

    def one(block: np.ndarray) -> list[np.ndarray]:
        stems = split(_to_model(block, rate))
        return [_from_model(stem, rate, len(block), channels) for stem in stems]

    map_chunks(
        source,
        [vocals, instrumental],
        one,
        chunk_seconds=chunk_seconds,
        overlap_seconds=overlap_seconds,
        progress=progress,
    )
