"""`map_chunks`: one function applied to a long file in overlapping chunks, its outputs
crossfaded at the joins and written as they come, so memory holds one chunk whatever the
file's length. The separator and the instrumental's pitch shift walk songs with it."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from gpu.errors import JobCanceled

# (frames, channels) float32 at the source's rate → outputs of the same shape, one per target
ChunkFn = Callable[[np.ndarray], list[np.ndarray]]
Progress = Callable[[float], bool]


def map_chunks(
    source: Path,
    targets: list[Path],
    fn: ChunkFn,
    *,
    chunk_seconds: float,
    overlap_seconds: float,
    progress: Progress | None = None,
    subtype: str = "FLOAT",
) -> None:
    """Chunk k covers [k·hop, k·hop + chunk); the `overlap` frames where it meets the previous
    chunk are a linear (equal-gain) crossfade, right for outputs that agree there. Progress is
    reported after each chunk; `progress` returning False raises JobCanceled."""
    with sf.SoundFile(source) as src:
        rate, channels, total = src.samplerate, src.channels, src.frames
        chunk = max(1, int(chunk_seconds * rate))
        overlap = min(int(overlap_seconds * rate), chunk // 2)
        fade_in = ((np.arange(overlap, dtype=np.float32) + 0.5) / max(overlap, 1))[:, None]
        outs = [sf.SoundFile(p, "w", rate, channels, subtype) for p in targets]
        try:
            tails: list[np.ndarray] = []
            start = 0
            while total:
                src.seek(start)
                block = src.read(chunk, dtype="float32", always_2d=True)
                frames, last = len(block), start + chunk >= total
                results = fn(block)
                for i, (result, out) in enumerate(zip(results, outs, strict=True)):
                    if result.shape != block.shape:
                        raise ValueError(f"chunk output {result.shape} for input {block.shape}")
                    if tails:  # frames > overlap here: the previous chunk did not reach the end
                        result[:overlap] = tails[i] * (1 - fade_in) + result[:overlap] * fade_in
                    out.write(result if last else result[: frames - overlap])
                tails = [result[frames - overlap :] for result in results]
                if progress is not None and not progress(min(1.0, (start + frames) / total)):
                    raise JobCanceled
                if last:
                    break
                start += chunk - overlap
        finally:
            for out in outs:
                out.close()
