"""Synthetic audio the tests build themselves: a sung-like line (harmonics, vibrato, phrase
gaps with a faint noise floor) and the hostile files the probe must survive."""

import io
import struct
import zlib

import numpy as np
import soundfile as sf


def voice(
    seconds: float,
    rate: int = 44100,
    channels: int = 1,
    f0: float = 220.0,
    level: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    phrases = (np.sin(2 * np.pi * t / 4.0) > -0.6).astype(float)  # ~3 s sung, ~1 s breath
    line = level * tone / 2.3 * phrases + 0.0005 * rng.standard_normal(t.size)
    return np.repeat(line[:, None], channels, axis=1).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt.upper(), subtype=subtype)
    return buf.getvalue()


def png() -> bytes:
    raw = b"\x00\xff\x00\x00"
    chunk = lambda kind, data: (  # noqa: E731
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def lying_wav(seconds: float = 3.0) -> bytes:
    """A WAV whose header claims ten times the data it holds."""
    data = bytearray(encode(voice(seconds), 44100, "wav", "PCM_16"))
    data_pos = data.index(b"data")
    real = struct.unpack("<I", data[data_pos + 4 : data_pos + 8])[0]
    data[data_pos + 4 : data_pos + 8] = struct.pack("<I", real * 10)
    data[4:8] = struct.pack("<I", len(data) - 8 + real * 9)
    return bytes(data)


def broken_mp3(seconds: float = 4.0) -> bytes:
    data = bytearray(encode(voice(seconds), 44100, "mp3"))
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(400)  # a run of broken frames
    return bytes(data)


def hostile_corpus() -> dict[str, tuple[bytes, str, set[str]]]:
    """name → (bytes, file name, acceptable outcomes: 'ready' or reject codes)."""
    rng = np.random.default_rng(7)
    good = encode(voice(3.0), 44100, "wav", "PCM_16")
    dc = np.ones((44100 * 3, 1), dtype=np.float32)
    return {
        "random bytes": (rng.bytes(50_000), "noise.wav", {"UNSUPPORTED_FORMAT"}),
        "text named .wav": (b"hello, I am not audio\n" * 100, "text.wav", {"UNSUPPORTED_FORMAT"}),
        "truncated header": (good[:30], "short.wav", {"CORRUPT_AUDIO"}),
        "truncated data": (good[: len(good) // 3], "cut.wav", {"ready", "TOO_SHORT"}),
        "lying header": (lying_wav(), "liar.wav", {"ready", "CORRUPT_AUDIO"}),
        "one sample": (encode(voice(1 / 44100), 44100, "wav", "PCM_16"), "one.wav", {"TOO_SHORT"}),
        "all silence": (
            encode(np.zeros((44100 * 3, 1), np.float32), 44100, "wav", "PCM_16"),
            "silence.wav",
            {"SILENT"},
        ),
        "full-scale DC": (encode(dc, 44100, "wav", "PCM_16"), "dc.wav", {"CLIPPED"}),
        "white noise": (
            encode(
                0.3 * rng.standard_normal((44100 * 3, 1)).astype(np.float32), 44100, "wav", "PCM_16"
            ),
            "hiss.wav",
            {"ready"},  # usable bytes: graded poor and noisy, never refused for noise
        ),
        "8 kHz": (
            encode(voice(3.0, rate=8000), 8000, "wav", "PCM_16"),
            "phone.wav",
            {"LOW_SAMPLE_RATE"},
        ),
        "384 kHz": (
            encode(voice(3.0, rate=384000), 384000, "wav", "PCM_16"),
            "hires.wav",
            {"HIGH_SAMPLE_RATE"},  # past 192 kHz, judged from the header
        ),
        "8 channels": (
            encode(voice(3.0, channels=8), 44100, "wav", "PCM_16"),
            "multi.wav",
            {"TOO_MANY_CHANNELS"},
        ),
        "PNG named .flac": (png(), "image.flac", {"UNSUPPORTED_FORMAT"}),
        "MP3 with a broken frame": (broken_mp3(), "broken.mp3", {"ready", "CORRUPT_AUDIO"}),
    }
