"""A result in the format a person asked for, encoded once and kept beside the original.

The workers store every result (a conversion, a song's parts, a model's previews) as one WAV;
`?format=` on a download asks for it as 16- or 24-bit WAV, FLAC, MP3 or Ogg Opus. The first
request encodes it (streamed from file to file, in the web process: a 10-minute song is a
few seconds of libsndfile/LAME) and uploads it under the original's key with the format's
suffix (`output.wav` → `output.mp3`, `output.24.wav`); later requests only sign a link.
Two first requests at once both encode and upload the same bytes, which is harmless.
Retention deletes the encodings with their original (`derived_keys`, used by
`pipeline.retention`), so they never outlive it.

Tags: the title (from the input's file name) and the encoder, written by libsndfile into the
container's own tag block (RIFF INFO, Vorbis comments, ID3v2), which players show.
16-bit WAV is TPDF-dithered (the masters are 24-bit); Opus runs only at 48 kHz, so that one
is resampled (soxr, streamed); MP3 is LAME at 320 kbps constant bitrate.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf

from pipeline.storage import Storage
from schemas.downloads import DownloadFormat

BLOCK_FRAMES = 65536
OPUS_RATE = 48000
SOFTWARE = "svc-pipeline"


@dataclass(frozen=True)
class Format:
    suffix: str  # replaces the original's ".wav"
    content_type: str
    container: str  # libsndfile's format
    subtype: str
    options: tuple[tuple[str, object], ...] = ()


FORMATS: dict[str, Format] = {
    "wav": Format(".16.wav", "audio/wav", "WAV", "PCM_16"),
    "wav24": Format(".24.wav", "audio/wav", "WAV", "PCM_24"),
    "flac": Format(".flac", "audio/flac", "FLAC", "PCM_24"),
    "mp3": Format(
        ".mp3",
        "audio/mpeg",
        "MP3",
        "MPEG_LAYER_III",
        (("bitrate_mode", "CONSTANT"), ("compression_level", 0.0)),  # 320 kbps CBR
    ),
    "opus": Format(".opus", "audio/ogg", "OGG", "OPUS", (("compression_level", 0.0),)),
}


def encoded_key(original: str, fmt: DownloadFormat) -> str:
    """Where `original`'s encoding in `fmt` is kept: beside it, keyed by the format."""
    return str(PurePosixPath(original).with_suffix("")) + FORMATS[fmt].suffix


def derived_keys(original: str) -> list[str]:
    """Every encoding `original` may have (for retention to delete with it)."""
    if not original.endswith(".wav"):
        return []
    return [encoded_key(original, fmt) for fmt in FORMATS]  # type: ignore[arg-type]


def download_name(stem: str, fmt: DownloadFormat | None) -> str:
    """The file name a download offers: `song-cover` → `song-cover.mp3`."""
    return stem + (".wav" if fmt is None else _ext(fmt))


def _ext(fmt: DownloadFormat) -> str:
    return "." + FORMATS[fmt].suffix.rsplit(".", 1)[-1]


def encode_file(source: Path, target: Path, fmt: DownloadFormat, title: str) -> None:
    """`source` (any file libsndfile reads) written as `fmt` with its title tag."""
    spec = FORMATS[fmt]
    rng = np.random.default_rng(0)
    with sf.SoundFile(source) as src:
        rate, channels = src.samplerate, src.channels
        out_rate = OPUS_RATE if fmt == "opus" else rate
        stream = None
        if out_rate != rate:
            import soxr

            stream = soxr.ResampleStream(rate, out_rate, channels, dtype="float32", quality="HQ")
        with sf.SoundFile(
            target, "w", out_rate, channels, spec.subtype, format=spec.container,
            **dict(spec.options),
        ) as dst:  # fmt: skip
            dst.title = title
            dst.software = SOFTWARE
            for block in src.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                if stream is not None:
                    block = stream.resample_chunk(block)
                if spec.subtype == "PCM_16":  # TPDF dither, ±1 LSB
                    noise = rng.random(block.shape) - rng.random(block.shape)
                    block = np.clip(block + (noise / 32768).astype(np.float32), -1.0, 1.0)
                dst.write(block)
            if stream is not None:
                dst.write(stream.resample_chunk(np.zeros((0, channels), np.float32), last=True))


def ensure_encoded(storage: Storage, original: str, fmt: DownloadFormat, title: str) -> str:
    """The key of `original` in `fmt`, encoding and uploading it first if it is not kept yet."""
    key = encoded_key(original, fmt)
    if storage.head(key) is not None:
        return key
    with tempfile.TemporaryDirectory(prefix="encode-") as tmp:
        source, target = Path(tmp) / "source.wav", Path(tmp) / f"encoded{_ext(fmt)}"
        storage.download_file(original, source)
        encode_file(source, target, fmt, title)
        storage.upload_file(target, key, FORMATS[fmt].content_type)
    return key
