"""Kokoro's two model files, baked into the GPU image at build (`python -m gpu models
--no-offline`), so a worker never downloads them at run time: kokoro-onnx names these release
files (its config.py), the model in fp32 ONNX (Kokoro-82M, Apache-2.0) and every voice's style
vectors in one NumPy archive."""

import logging
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)
RELEASE = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0"
FILES = ("kokoro-v1.0.onnx", "voices-v1.0.bin")
KOKORO_DIRNAME = "kokoro"


def kokoro_dir(cache_dir: Path) -> Path:
    return cache_dir / KOKORO_DIRNAME


def fetch_kokoro(cache_dir: Path) -> Path:
    """Network required; each file written whole (a `.part` renamed), so a broken download
    leaves nothing a worker would load."""
    target = kokoro_dir(cache_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (target / name).exists():
            continue
        partial = target / f"{name}.part"
        urllib.request.urlretrieve(f"{RELEASE}/{name}", partial)  # noqa: S310 - a fixed https URL
        partial.rename(target / name)
        log.info("fetched %s", name)
    return target
