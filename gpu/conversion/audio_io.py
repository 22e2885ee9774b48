"""Reading a conversion's input: as mono at the model's rate, streamed, and cut into windows
at quiet moments. Shared by a vocal's conversion (`job`) and a song's (`song`), which is why it
is its own module: the two used to import each other for it."""

from pathlib import Path

import numpy as np
import soundfile as sf

from gpu.errors import JobFailure
from pipeline.audio import BLOCK_FRAMES, AudioError, measure
from pipeline.audio_header import HeaderError, HeaderLimits, screen_file
from pipeline.formats import too_large_message
from pipeline.settings import Settings
from pipeline.storage import Storage

MIN_INPUT_RATE = 8000  # inputs are resampled to the model's rate anyway


def fetch_screened(
    storage: Storage, settings: Settings, key: str, path: Path, max_seconds: float
) -> Path:
    """The uploaded object at `key`, downloaded to `path` and screened like any upload: its
    size before the download, then its header's rate, channels and length (so a forged one
    sizes nothing), then a decode; every refusal a `JobFailure` with the upload's code."""
    info = storage.head(key)
    if info is None:
        raise JobFailure("INPUT_MISSING", "The uploaded input could not be found.")
    limit = settings.max_conversion_bytes
    if info.size > limit:
        raise JobFailure("TOO_LARGE", too_large_message(limit, "Inputs"))
    storage.download_file(key, path)
    try:
        screen_file(path, HeaderLimits(MIN_INPUT_RATE, settings.max_channels, max_seconds))
        measure(path, max_seconds)
    except (AudioError, HeaderError) as exc:
        raise JobFailure(exc.code, exc.message) from exc
    return path


WINDOW_SECONDS = 30.0
SEARCH_SECONDS = 2.0


def next_cut(audio: np.ndarray, rate: int, window: float = WINDOW_SECONDS) -> int:
    """Where to end the window that starts at `audio[0]`: the quietest 10 ms within ±2 s of
    `window` seconds, so no cut lands in the middle of a loud note; the end if it is near."""
    frame, step, search = max(1, rate // 100), int(window * rate), int(SEARCH_SECONDS * rate)
    if len(audio) <= step + search:
        return len(audio)
    region = audio[step - search : step + search]
    usable = len(region) // frame * frame
    energy = (region[:usable].reshape(-1, frame) ** 2).mean(axis=1)
    return step - search + int(np.argmin(energy)) * frame


def to_mono(source: Path, target: Path, rate: int) -> int:
    """The input as mono float at the model's rate, resampled block by block (soxr's
    streaming resampler), so a 10-minute input never sits in memory whole. Returns frames."""
    import soxr

    with sf.SoundFile(source) as src, sf.SoundFile(target, "w", rate, 1, "FLOAT") as dst:
        stream = (
            None
            if src.samplerate == rate
            else soxr.ResampleStream(src.samplerate, rate, 1, dtype="float32", quality="HQ")
        )
        for block in src.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            mono = block.mean(axis=1)
            dst.write(stream.resample_chunk(mono) if stream else mono)
        if stream is not None:
            dst.write(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        dst.flush()
        return dst.frames
