"""The probe's cost next to a bare decode and to ffmpeg's loudness meter, in the same run.

For WAV, FLAC and MP3 inputs of 1 and 6 minutes (stereo 44.1 kHz, a synthetic sung line),
pinned to one core: CPU seconds per minute of audio for soundfile's bare decode, for the
whole analysis (decode included: BS.1770 loudness, clipping, silence, the noise estimate,
Silero voice activity, energy below 70 Hz) and for the voice detector's share of it, and the
CPU time of `ffmpeg -af ebur128` (the reference loudness meter, its own decode included) on
the same file when ffmpeg is installed. The ratios: the whole analysis to ffmpeg, and the
analysis without our decode to ffmpeg. The goal: the whole analysis at about half of
ffmpeg's time. The voice detector listens to a fixed 6 s per file, so its share per minute
falls with the length.

`--stack` also times upload → verdict for a 1-minute WAV on a throwaway local stack
(Postgres, SeaweedFS, the relay, the API in this process), stage by stage: the PUT, the
relay's hop, the probe's fetch, the analysis, the SQL verdict.

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


def without_voice(path: Path) -> None:
    """The analysis with the voice detector's listening left out: the difference to the
    whole analysis is the detector's share."""
    listen = VoiceCollector.voice_ratio
    VoiceCollector.voice_ratio = lambda *_: None  # type: ignore[method-assign]
    try:
        measure(path, 3600)
    finally:
        VoiceCollector.voice_ratio = listen  # type: ignore[method-assign]


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
    """The whole local path: PUT to SeaweedFS, the relay (`weed filer.meta.tail` → signed
    POST /events/r2), the API's event handler, the probe on a dispatch thread (HEAD, header
    check, fetch, analysis, the SQL verdict). Each stage is stamped as it happens; the
    verdict is seen by polling the row every 2 ms."""
    import threading
    from uuid import uuid4

    import pipeline.probe as probe_module
    from bench.common import throwaway_stack
    from endpoints.app import create_app
    from pipeline import keys
    from pipeline.local.issuer import ThreadedServer
    from pipeline.local.seaweed import free_port
    from pipeline.services import build_services

    stamps: dict[str, float] = {}
    lock = threading.Lock()

    def stamp(name: str) -> None:
        with lock:
            stamps.setdefault(name, time.perf_counter())

    def stamped(fn, before: str, after: str):
        def wrapper(*args, **kwargs):
            stamp(before)
            try:
                return fn(*args, **kwargs)
            finally:
                stamp(after)

        return wrapper

    with tempfile.TemporaryDirectory() as tmp, throwaway_stack(Path(tmp)) as (stack, settings):
        services = build_services(
            settings.model_copy(update={"singer_check": False, "dispatch": "thread"})
        )
        services.events.handle = stamped(services.events.handle, "event in", "event out")
        probe_module.measure = stamped(probe_module.measure, "analysis in", "analysis out")
        repo, storage = services.repo, services.storage
        record = repo.record_probe
        storage.download_sealed = stamped(storage.download_sealed, "download in", "download out")
        server = ThreadedServer(create_app(services=services), free_port()).start()
        stack.start_relay(server.url)
        time.sleep(3.0)  # the tail follows events from when it subscribed; the warm-up runs
        user_id = stack.ensure_user("bench@example.com")
        profile = repo.create_profile(user_id, "bench")
        buf = Path(tmp) / "take.wav"
        sf.write(buf, sung_line(60), 44100, subtype="PCM_16")
        data = buf.read_bytes()
        runs: list[dict[str, float]] = []
        for _ in range(repeats):
            file_id = uuid4()
            key = keys.dataset_key(user_id, profile.id, file_id, "take.wav")
            repo.register_upload(
                user_id, profile.id, file_id, key, "take.wav", "audio/wav", len(data)
            )
            services.worker_repo.record_probe = stamped(record, "verdict in", "verdict out")
            stamps.clear()
            stamp("put in")
            storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
            stamp("put out")
            while repo.get_dataset_file(file_id).status == "pending":
                time.sleep(0.002)
            stamp("seen")
            runs.append(dict(stamps))
            repo.delete_dataset_file(user_id, profile.id, file_id)
        server.stop()
        services.close()
    stages = [
        ("PUT to the object store", "put in", "put out"),
        ("relay: filer event → POST /events/r2", "put out", "event in"),
        ("event to download: HEAD, SQL, header", "event in", "download in"),
        ("download (GET, MD5, temp file)", "download in", "download out"),
        ("decoder's header check", "download out", "analysis in"),
        ("analysis", "analysis in", "analysis out"),
        ("SQL verdict", "verdict in", "verdict out"),
        ("upload → verdict", "put in", "verdict out"),
    ]
    best_run = min(runs, key=lambda r: r["verdict out"] - r["put in"])
    print(
        f"\nupload → verdict, 1-minute WAV ({len(data) / 2**20:.1f} MB), local stack with the "
        f"relay, wall seconds, {len(runs)} runs (a shared machine: the best run is the one "
        "least disturbed)"
    )
    print(f"{'stage':<40}{'best run':>10}{'median':>10}{'first run':>11}")
    for name, a, b in stages:
        median = float(np.median([r[b] - r[a] for r in runs]))
        first = runs[0][b] - runs[0][a]
        print(f"{name:<40}{best_run[b] - best_run[a]:10.3f}{median:10.3f}{first:11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack", action="store_true", help="also time upload → verdict")
    parser.add_argument("--only-stack", action="store_true", help="only upload → verdict")
    args = parser.parse_args()
    if args.only_stack:
        upload_to_verdict(max(args.repeats, 5))
        return
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cores:
        os.sched_setaffinity(0, {min(cores)})
    has_ffmpeg = FFMPEG != "ffmpeg"
    print("CPU seconds per minute of audio (best of", args.repeats, "runs, one core)")
    print(
        f"{'input':<11}{'decode':>8}{'analysis':>10}{'of it VAD':>10}{'ffmpeg':>8}"
        f"{'analysis/decode':>17}{'analysis/ffmpeg':>17}{'(analysis-decode)/ffmpeg':>26}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (1, 6):
            samples = sung_line(minutes * 60)
            for fmt in ("wav", "flac", "mp3"):
                path = Path(tmp) / f"{minutes}min.{fmt}"
                sf.write(path, samples, 44100, format=fmt.upper())
                decode = best(bare_decode, path, args.repeats) / minutes
                analysis = best(lambda p: measure(p, 3600), path, args.repeats) / minutes
                vad = analysis - best(without_voice, path, args.repeats) / minutes
                ref = best(ffmpeg_ebur128, path, args.repeats) / minutes if has_ffmpeg else None
                print(
                    f"{fmt} {minutes} min  {decode:8.3f}{analysis:10.3f}{max(vad, 0):10.3f}"
                    + (f"{ref:8.3f}" if ref else f"{'-':>8}")
                    + f"{analysis / decode:16.2f}x"
                    + (f"{analysis / ref:16.2f}x" if ref else f"{'-':>17}")
                    + (f"{(analysis - decode) / ref:25.2f}x" if ref else f"{'-':>26}")
                )
    if args.stack:
        if cores:
            os.sched_setaffinity(0, cores)  # the stack's servers must not share the one core
        upload_to_verdict(max(args.repeats, 5))


if __name__ == "__main__":
    main()
