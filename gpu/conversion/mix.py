"""The cover's mix: the converted vocal over the song's instrumental.

The converted vocal (mono, at the voice model's rate) is resampled to the song's rate and
placed in the centre of every channel, brought to the integrated loudness of the vocal stem
it replaces (so it sits in the song as the original singer did), and summed with the
instrumental. If the sum's true peak (four times oversampled) is above `CEILING_DB` (-1 dBTP), the
whole mix, and the two parts with it, is turned down by one static gain until it is at the
ceiling: no clipping, no pumping, and the parts still add up to the mix. Every pass streams
from file to file. Outputs have the song's rate and length: the mix in the song's channels,
the vocal mono, the instrumental in the song's channels; 24-bit WAVs (the masters the
download formats are encoded from, `pipeline.encode`). When the vocal is
transposed the instrumental follows, through Rubber Band (`gpu.conversion.shift`).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from gpu.chunked import Progress
from gpu.conversion.shift import shift_pitch
from gpu.errors import JobCanceled
from gpu.measures.loudness import BLOCK_FRAMES, db, integrated_loudness, true_peak

CEILING_DB = -1.0
STREAMING_LUFS = -14.0  # the integrated loudness streaming services normalise to
MAX_GAIN_DB = 24.0  # a near-silent conversion is not amplified into its noise floor


@dataclass(frozen=True)
class MixReport:
    vocal_gain_db: float  # applied to the converted vocal to match the original's loudness
    limiter_db: float  # the static gain applied to the whole mix (≤ 0 unless "streaming")
    true_peak_db: float  # of the mix as written


def place(converted: Path, target: Path, rate: int, channels: int, frames: int) -> None:
    """The mono converted vocal at the song's rate, on every channel, exactly `frames` long."""
    import soxr

    written = 0
    with sf.SoundFile(converted) as src, sf.SoundFile(target, "w", rate, channels, "FLOAT") as dst:
        stream = (
            None
            if src.samplerate == rate
            else soxr.ResampleStream(src.samplerate, rate, 1, dtype="float32", quality="HQ")
        )

        def put(mono: np.ndarray) -> None:
            nonlocal written
            mono = mono[: frames - written]
            dst.write(np.repeat(mono[:, None], channels, axis=1))
            written += len(mono)

        for block in src.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            mono = block.mean(axis=1)
            put(stream.resample_chunk(mono) if stream else mono)
        if stream is not None:
            put(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        while written < frames:
            put(np.zeros(min(BLOCK_FRAMES, frames - written), np.float32))


def _check(progress: Progress | None, done: float) -> None:
    if progress is not None and not progress(done):
        raise JobCanceled


def mix(
    converted: Path,
    original_vocals: Path,
    instrumental: Path,
    out: dict[str, Path],
    *,
    shift_semitones: int = 0,
    loudness: str = "original",
    progress: Progress | None = None,
) -> MixReport:
    """Writes `out["mix"]`, `out["vocal"]` and `out["instrumental"]` (see the module).
    `loudness="streaming"` brings the mix to `STREAMING_LUFS` by one static gain (up or
    down), the ceiling still holding: the parts follow, so they still add up to it."""
    info = sf.info(str(instrumental))
    rate, channels, frames = info.samplerate, info.channels, info.frames
    work = out["mix"].parent
    placed = work / "mix-vocal-placed.wav"
    place(converted, placed, rate, channels, frames)
    if shift_semitones:
        shifted = work / "mix-instrumental-shifted.wav"
        shift_pitch(
            instrumental, shifted, shift_semitones, lambda f: progress is None or progress(f / 2)
        )
        instrumental = shifted
    _check(progress, 0.5)

    target, current = integrated_loudness(original_vocals), integrated_loudness(placed)
    gain_db = 0.0
    if np.isfinite(target) and np.isfinite(current):
        gain_db = float(np.clip(target - current, -MAX_GAIN_DB, MAX_GAIN_DB))
    gain = 10 ** (gain_db / 20)

    raw = work / "mix-raw.wav"
    with (
        sf.SoundFile(placed) as voc,
        sf.SoundFile(instrumental) as inst,
        sf.SoundFile(raw, "w", rate, channels, "FLOAT") as dst,
    ):
        for block in inst.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            dst.write(block + gain * voc.read(len(block), dtype="float32", always_2d=True))
    _check(progress, 0.75)

    peak = true_peak(raw)
    ceiling = 10 ** (CEILING_DB / 20)
    wanted = 1.0
    if loudness == "streaming":
        level = integrated_loudness(raw)
        if np.isfinite(level):
            wanted = 10 ** (min(STREAMING_LUFS - level, MAX_GAIN_DB) / 20)
    limiter = min(wanted, ceiling / peak) if peak > 0 else wanted
    with (
        sf.SoundFile(raw) as mixed,
        sf.SoundFile(placed) as voc,
        sf.SoundFile(instrumental) as inst,
        sf.SoundFile(out["mix"], "w", rate, channels, "PCM_24") as mix_out,
        sf.SoundFile(out["vocal"], "w", rate, 1, "PCM_24") as vocal_out,
        sf.SoundFile(out["instrumental"], "w", rate, channels, "PCM_24") as inst_out,
    ):
        for block in mixed.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            n = len(block)
            mix_out.write(limiter * block)
            vocal = voc.read(n, dtype="float32", always_2d=True)[:, 0]
            vocal_out.write(np.clip(limiter * gain * vocal, -1.0, 1.0))
            rest = inst.read(n, dtype="float32", always_2d=True)
            inst_out.write(np.clip(limiter * rest, -1.0, 1.0))
    _check(progress, 1.0)
    return MixReport(gain_db, db(limiter), db(true_peak(out["mix"])))
