"""What an audio file's header claims, read from its first bytes without decoding, and the
verdict those claims earn before any decoder runs.

A forged header (a 2 GHz rate, 1024 channels, a data size that lies) would otherwise size
the decoder's buffers and defeat the duration cut-off, so the probe judges rate, channels and
length here first, from at most `HEADER_BYTES` of the file. The frame count is clamped to the
bytes the file really has, so a data chunk claiming more than the file holds cannot make a
short file look long, nor a long one short.
"""

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.settings import Settings

HEADER_BYTES = 64 * 1024
MAX_SAMPLE_RATE = 192_000
_PCM_FORMATS = {1, 3, 0xFFFE}  # integer PCM, IEEE float, WAVE_FORMAT_EXTENSIBLE
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True)
class Header:
    format: str  # wav | flac | mp3
    sample_rate: int | None
    channels: int | None
    frames: int | None  # None when the header does not say (MP3, compressed WAV, streams)

    @property
    def duration_sec(self) -> float | None:
        if self.frames is None or not self.sample_rate:
            return None
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class HeaderLimits:
    min_sample_rate: int
    max_channels: int
    max_seconds: float

    @classmethod
    def for_dataset(cls, settings: "Settings") -> "HeaderLimits":
        return cls(
            settings.min_sample_rate, settings.max_channels, settings.max_dataset_file_seconds
        )


class HeaderError(Exception):
    """The header is not one we can trust to decode; the code says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_header(head: bytes, file_size: int) -> Header | None:
    """The header's claims, or None for bytes that are no WAV, FLAC or MP3 we know."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return _wav(head, file_size)
    if head[:4] == b"fLaC":
        return _flac(head)
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return _mp3(head)
    return None


def read_file_header(path: Path) -> Header | None:
    with path.open("rb") as fh:
        return read_header(fh.read(HEADER_BYTES), path.stat().st_size)


def _corrupt(what: str) -> HeaderError:
    return HeaderError("CORRUPT_AUDIO", f"The file's header is damaged ({what}).")


def _wav(head: bytes, file_size: int) -> Header:
    pos, fmt, ds64_data = 12, None, None
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if chunk == b"ds64" and body + 16 <= len(head):
            ds64_data = struct.unpack_from("<Q", head, body + 8)[0]
        elif chunk == b"fmt ":
            if body + 16 > len(head):
                raise _corrupt("short format chunk")
            fmt = struct.unpack_from("<HHIIHH", head, body)
        elif chunk == b"data":
            if fmt is None:
                raise _corrupt("audio data before its format")
            declared = ds64_data if size == 0xFFFFFFFF and ds64_data is not None else size
            return _wav_header(fmt, declared, max(file_size - body, 0))
        pos = body + size + (size & 1)
    if fmt is None:
        raise _corrupt("no format chunk")
    return _wav_header(fmt, None, 0)


def _wav_header(fmt: tuple[int, ...], declared: int | None, available: int) -> Header:
    audio_format, channels, rate, _byte_rate, block_align, _bits = fmt
    frames = None
    if declared is not None and audio_format in _PCM_FORMATS:
        if block_align == 0:
            raise _corrupt("zero block size")
        frames = min(declared, available) // block_align
    return Header("wav", rate, channels, frames)


def _flac(head: bytes) -> Header:
    if len(head) < 8 + 34 or head[4] & 0x7F != 0:
        raise _corrupt("no stream info")
    info = head[8 : 8 + 34]
    packed = int.from_bytes(info[10:18], "big")
    rate = packed >> 44
    channels = ((packed >> 41) & 0x7) + 1
    total = packed & ((1 << 36) - 1)
    return Header("flac", rate, channels, total or None)


def _mp3(head: bytes) -> Header:
    pos = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        size = 0
        for byte in head[6:10]:
            size = (size << 7) | (byte & 0x7F)
        pos = 10 + size + (10 if head[5] & 0x10 else 0)
    while pos + 4 <= len(head):
        b1, b2, b3 = head[pos + 1], head[pos + 2], head[pos + 3]
        version, layer, rate_index = (b1 >> 3) & 0x3, (b1 >> 1) & 0x3, (b2 >> 2) & 0x3
        if head[pos] == 0xFF and b1 & 0xE0 == 0xE0 and version != 1 and layer and rate_index != 3:
            channels = 1 if (b3 >> 6) == 3 else 2
            return Header("mp3", _MP3_RATES[version][rate_index], channels, None)
        pos += 1
    return Header("mp3", None, None, None)  # the sync lies past what we read: the decoder judges


def judge(header: Header, limits: HeaderLimits) -> tuple[str, str] | None:
    """A rejection `(code, message)` from the header's claims alone, or None."""
    rate, channels = header.sample_rate, header.channels
    if (rate is not None and rate <= 0) or (channels is not None and channels <= 0):
        return "CORRUPT_AUDIO", "The file's header is damaged."
    if channels is not None and channels > limits.max_channels:
        return (
            "TOO_MANY_CHANNELS",
            f"This file has {channels} channels; use a mono or stereo vocal.",
        )
    if rate is not None and rate < limits.min_sample_rate:
        return (
            "LOW_SAMPLE_RATE",
            f"{rate} Hz is too low for singing; use at least {limits.min_sample_rate} Hz.",
        )
    if rate is not None and rate > MAX_SAMPLE_RATE:
        return (
            "HIGH_SAMPLE_RATE",
            f"{rate} Hz is beyond what any recording uses; export at {MAX_SAMPLE_RATE} Hz or less.",
        )
    duration, minutes = header.duration_sec, limits.max_seconds / 60
    if duration is not None and duration > limits.max_seconds:
        return (
            "TOO_LONG",
            f"Files can be at most {minutes:g} minutes long; split this one.",
        )
    return None


def decoder_header(path: Path) -> Header:
    """What the decoder itself will read the file as (libsndfile parses the header only), so a
    file our parser reads one way and the decoder another is judged on both. Rate and channels
    only: its frame count is an estimate for MP3, and the decoder's own cut-off bounds length."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        raise HeaderError(
            "CORRUPT_AUDIO", "The audio could not be decoded; it may be damaged."
        ) from exc
    return Header(str(info.format).lower(), info.samplerate, info.channels, None)


def screen_head(head: bytes, file_size: int, limits: HeaderLimits) -> Header:
    """Raises HeaderError for a file whose first bytes already condemn it."""
    header = read_header(head, file_size)
    if header is None:
        raise HeaderError("UNSUPPORTED_FORMAT", "This is not a WAV, FLAC or MP3 file.")
    rejection = judge(header, limits)
    if rejection:
        raise HeaderError(*rejection)
    return header


def screen_file(path: Path, limits: HeaderLimits) -> Header:
    """Both readings of a downloaded file's header, ours and the decoder's, must pass."""
    with path.open("rb") as fh:
        screen_head(fh.read(HEADER_BYTES), path.stat().st_size, limits)
    header = decoder_header(path)
    rejection = judge(header, limits)
    if rejection:
        raise HeaderError(*rejection)
    return header
