"""Probe throughput next to soundfile's bare decode of the same files, in the same run.

Seconds of audio per second of CPU, pinned to one core, for WAV, FLAC and MP3 inputs of 1 and
6 minutes (stereo 44.1 kHz, a synthetic sung line). The goal is a ratio close to 1: measuring
should cost little more than decoding.

    .venv/bin/python bench/probe.py [--repeats 3]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import soundfile as sf

from pipeline.audio import BLOCK_FRAMES, measure


def sung_line(seconds: float, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(220 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / rate
    line = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 6)) / 2.3
    line *= np.sin(2 * np.pi * t / 4.0) > -0.6
    return np.stack([line, 0.9 * line], axis=1).astype(np.float32)


def bare_decode(path: Path) -> None:
    with sf.SoundFile(path) as audio:
        for _ in audio.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            pass


def best_time(fn, path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(path)
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"{'input':<12} {'decode s/s':>11} {'probe s/s':>10} {'probe/decode time':>18}")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (1, 6):
            samples = sung_line(minutes * 60)
            for fmt in ("wav", "flac", "mp3"):
                path = Path(tmp) / f"{minutes}min.{fmt}"
                sf.write(path, samples, 44100, format=fmt.upper())
                seconds = minutes * 60
                decode = best_time(bare_decode, path, args.repeats)
                probe = best_time(lambda p: measure(p, 3600), path, args.repeats)
                print(
                    f"{fmt} {minutes} min{'':<4} {seconds / decode:11.0f} {seconds / probe:10.0f}"
                    f" {probe / decode:17.2f}x"
                )


if __name__ == "__main__":
    main()
