"""The probe's cost next to a bare decode and to ffmpeg's loudness meter, in the same run.

For WAV, FLAC and MP3 inputs of 1 and 6 minutes (stereo 44.1 kHz, a synthetic sung line),
pinned to one core: CPU seconds per minute of audio for soundfile's bare decode, for the
whole analysis (decode, BS.1770 loudness, clipping, silence, the noise estimate, Silero voice
activity, energy below 70 Hz) and for the voice detector alone, and the CPU time of
`ffmpeg -af ebur128` (the reference loudness meter) on the same file when ffmpeg is
installed. The goal: the whole analysis at about half of ffmpeg's time.

`--stack` also times upload → verdict for a 1-minute WAV on a throwaway local stack
(Postgres, SeaweedFS): the object PUT, then the probe as the event handler runs it (fetch,
analysis, the SQL verdict); the relay's own hop is not included.

    .venv/bin/python bench/probe.py [--repeats 3] [--stack]
"""

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import soundfile as sf

from pipeline.audio import BLOCK_FRAMES, measure
from pipeline.vad import VoiceCollector


def sung_line(seconds: float, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(220 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / rate
    line = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 6)) / 2.3
    line *= np.sin(2 * np.pi * t / 4.0) > -0.6
    line += 0.001 * np.random.default_rng(0).standard_normal(t.size)
    return np.stack([line, 0.9 * line], axis=1).astype(np.float32)


def bare_decode(path: Path) -> None:
    with sf.SoundFile(path) as audio:
        for _ in audio.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            pass


def voice_only(path: Path) -> None:
    """The detector's share: decode, downmix, and listen to the same stretches."""
    with sf.SoundFile(path) as audio:
        voice = VoiceCollector(audio.frames, audio.samplerate)
        for block in audio.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            voice.add(block.mean(axis=1))
    voice.voice_ratio()


FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def ffmpeg_ebur128(path: Path) -> None:
    subprocess.run(
        [
            FFMPEG,
            "-nostats",
            "-hide_banner",
            "-threads",
            "1",
            "-i",
            str(path),
            "-af",
            "ebur128",
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
    )


def cpu_seconds(fn, path: Path) -> float:
    before, children = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    fn(path)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    return time.process_time() - before + child


def best(fn, path: Path, repeats: int) -> float:
    return min(cpu_seconds(fn, path) for _ in range(repeats))


def upload_to_verdict(repeats: int) -> None:
    from uuid import uuid4

    from bench.common import throwaway_stack
    from pipeline import keys
    from pipeline.probe import probe_dataset_file
    from pipeline.services import build_services

    with tempfile.TemporaryDirectory() as tmp, throwaway_stack(Path(tmp)) as (stack, settings):
        services = build_services(settings.model_copy(update={"singer_check": False}))
        repo, storage = services.repo, services.storage
        user_id = stack.ensure_user("bench@example.com")
        profile = repo.create_profile(user_id, "bench")
        buf = Path(tmp) / "take.wav"
        sf.write(buf, sung_line(60), 44100, subtype="PCM_16")
        data = buf.read_bytes()
        times = []
        for _ in range(repeats):
            file_id = uuid4()
            key = keys.dataset_key(user_id, profile.id, file_id, "take.wav")
            repo.register_upload(
                user_id, profile.id, file_id, key, "take.wav", "audio/wav", len(data)
            )
            start = time.perf_counter()
            storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
            row = probe_dataset_file(repo, storage, file_id)
            times.append(time.perf_counter() - start)
            assert row.status in {"ready", "rejected"}
            repo.delete_dataset_file(user_id, profile.id, file_id)
        services.close()
    print(
        f"\nupload → verdict, 1-minute WAV ({len(data) / 2**20:.1f} MB), local stack, wall: "
        f"best {min(times):.2f} s, median {float(np.median(times)):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack", action="store_true", help="also time upload → verdict")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    has_ffmpeg = FFMPEG != "ffmpeg"
    print("CPU seconds per minute of audio (best of", args.repeats, "runs, one core)")
    print(
        f"{'input':<11}{'decode':>8}{'analysis':>10}{'of it VAD':>10}{'ffmpeg':>8}"
        f"{'analysis/decode':>17}{'analysis/ffmpeg':>17}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (1, 6):
            samples = sung_line(minutes * 60)
            for fmt in ("wav", "flac", "mp3"):
                path = Path(tmp) / f"{minutes}min.{fmt}"
                sf.write(path, samples, 44100, format=fmt.upper())
                decode = best(bare_decode, path, args.repeats) / minutes
                analysis = best(lambda p: measure(p, 3600), path, args.repeats) / minutes
                vad = best(voice_only, path, args.repeats) / minutes - decode
                ref = best(ffmpeg_ebur128, path, args.repeats) / minutes if has_ffmpeg else None
                print(
                    f"{fmt} {minutes} min  {decode:8.3f}{analysis:10.3f}{max(vad, 0):10.3f}"
                    + (f"{ref:8.3f}" if ref else f"{'-':>8}")
                    + f"{analysis / decode:16.2f}x"
                    + (f"{analysis / ref:16.2f}x" if ref else f"{'-':>17}")
                )
    if args.stack:
        upload_to_verdict(args.repeats)


if __name__ == "__main__":
    main()
