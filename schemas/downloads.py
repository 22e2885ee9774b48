"""The formats a result can be downloaded in (`?format=` on the download endpoints)."""

from typing import Literal

DownloadFormat = Literal["wav", "wav24", "flac", "mp3", "opus"]
FORMAT_HELP = (
    "The file's format: `wav` (16-bit PCM, dithered), `wav24` (24-bit PCM), `flac` (lossless, "
    "24-bit), `mp3` (320 kbps CBR) or `opus` (Ogg Opus, 48 kHz). Left out: the result as "
    "stored (a WAV). Each format is encoded once, on its first download, and kept beside the "
    "result."
)
