"""Conversion speed and memory: the pipeline's warm worker next to the fork's `svc infer` CLI
on the same input and model (the CLI reloads ContentVec and the model every call), cold vs
warm latency, and peak RSS for 1- and 10-minute inputs. Then songs: a synthetic song in song
mode (separate → convert → mix) against its vocal stem in stem mode and against the `demucs`
CLI separating the same file with the same model (`--repo` at the model cache), all in one
run, as ratios. CPU, the tiny preset's voice and the tiny offline HTDemucs (whose cost per
second of audio is not the real model's: read the ratios, not the seconds). The song's
instrumental shift (+3 semitones) is timed with Rubber Band (`gpu.conversion.shift`) next to
the librosa phase vocoder in 30 s chunks it replaced.

    .venv/bin/python -m bench.convert [--seconds 30] [--only stem|song]
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import psycopg
import soundfile as sf

from bench.common import prepare_offline_models, run_measured, throwaway_stack
from gpu.weights import use_cache
from pipeline import keys
from pipeline.services import build_services
from pipeline.settings import as_env
from tests.audio import voice
from tests.songs import song
from tests.voices import train_tiny_voice


def queued_job(repo, storage, trained, path: Path, params: dict | None = None) -> str:
    job_id = uuid4()
    key = keys.conversion_input_key(trained.user_id, trained.profile_id, job_id, "wav")
    repo.create_conversion(
        trained.user_id,
        trained.profile_id,
        job_id,
        model_version_id=None,
        params=params or {},
        input_key=key,
        input_filename=path.name,
        input_size_bytes=path.stat().st_size,
        upload_expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )
    storage.upload_file(path, key, "audio/wav")
    repo.queue_conversion(job_id)
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--only", choices=["stem", "song"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        use_cache(root / "models", offline=True)
        with throwaway_stack(root) as (stack, settings):
            env = os.environ | as_env(settings)
            prepare_offline_models(env)
            services = build_services(settings)
            user = stack.ensure_user("bench@localhost")
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                conn.execute(
                    "insert into public.quota_overrides (user_id, conversions_per_day) "
                    "values (%s, 1000)",
                    (user,),
                )
            trained = train_tiny_voice(services.repo, services.storage, env, user)
            if args.only != "song":
                run(args.seconds, root, services.repo, services.storage, settings, trained, env)
            if args.only != "stem":
                songs(args.seconds, root, services.repo, services.storage, settings, trained)


def songs(seconds, root, repo, storage, settings, trained) -> None:
    """Song mode vs stem mode vs the demucs CLI, each warm where the pipeline would be."""
    from gpu.conversion.job import ConversionRun
    from gpu.conversion.model_cache import ModelCache
    from gpu.separation.separate import demucs_repo, separate

    made = song(seconds, 44100)
    mix_path, stem_path = root / "song.wav", root / "song-vocal.wav"
    sf.write(mix_path, made.mix, 44100)
    sf.write(stem_path, made.vocals[:, 0], 44100)
    cache = ModelCache(storage, root / "voices", "cpu")
    models = Path(settings.model_cache_dir)

    def convert(path: Path, **params) -> float:
        job = queued_job(repo, storage, trained, path, params)
        start = time.perf_counter()
        assert ConversionRun(repo, storage, settings, cache, job).run() == "succeeded"
        return time.perf_counter() - start

    convert(mix_path, input_kind="song")  # loads the voice, ContentVec and HTDemucs once
    stem = convert(stem_path)
    song_mode = convert(mix_path, input_kind="song")
    start = time.perf_counter()
    separate(mix_path, root / "v.wav", root / "i.wav", cache_dir=models, device="cpu")
    separation = time.perf_counter() - start
    shift_new, shift_old = time_shifts(root / "i.wav", root)
    cli = [sys.executable, "-m", "demucs", "-n", "htdemucs", "--repo", str(demucs_repo(models)),
           "--two-stems", "vocals", "--shifts", "0", "-d", "cpu", "-o", str(root / "demucs-out"),
           str(mix_path)]  # fmt: skip
    cli_seconds, cli_rss = run_measured(cli, os.environ | {"HF_HUB_OFFLINE": "1"})

    print(f"\nsong {seconds:.0f} s (44.1 kHz stereo), tiny voice, tiny HTDemucs, CPU, warm\n")
    print(f"stem mode (its vocal stem)                {stem:6.2f} s")
    print(f"song mode (separate → convert → mix)      {song_mode:6.2f} s")
    print(f"  of which separation, in process         {separation:6.2f} s")
    print(
        f"`python -m demucs` (same model, --repo)   {cli_seconds:6.2f} s   "
        f"peak RSS {cli_rss:.0f} MB"
    )
    print(f"song mode / stem mode                     {song_mode / stem:6.2f}x")
    print(f"song mode / (stem mode + demucs CLI)      {song_mode / (stem + cli_seconds):6.2f}x")
    print(f"in-process separation / demucs CLI        {separation / cli_seconds:6.2f}x")
    print(f"instrumental +3 st, Rubber Band R3        {shift_new:6.2f} s")
    print(f"instrumental +3 st, old phase vocoder     {shift_old:6.2f} s")


def time_shifts(instrumental: Path, root: Path) -> tuple[float, float]:
    """Seconds for the instrumental's shift: Rubber Band now, the old phase vocoder before
    (librosa, 30 s chunks with 1 s crossfades, warmed once so its JIT is not charged)."""
    import librosa
    import numpy as np

    from gpu.chunked import map_chunks
    from gpu.conversion.shift import shift_pitch

    rate = sf.info(str(instrumental)).samplerate
    start = time.perf_counter()
    shift_pitch(instrumental, root / "shift-new.wav", 3, None)
    new = time.perf_counter() - start

    def one(block):
        shifted = librosa.effects.pitch_shift(block.T, sr=rate, n_steps=3)
        return [np.ascontiguousarray(shifted.T, dtype=np.float32)]

    one(np.zeros((rate, 2), np.float32))
    start = time.perf_counter()
    map_chunks(instrumental, [root / "shift-old.wav"], one, chunk_seconds=30, overlap_seconds=1)
    return new, time.perf_counter() - start


def run(seconds, root, repo, storage, settings, trained, env) -> None:
    from gpu.conversion.job import ConversionRun
    from gpu.conversion.model_cache import ModelCache

    clip = root / "input.wav"
    sf.write(clip, voice(seconds, seed=5)[:, 0], 44100)
    cache = ModelCache(storage, root / "voices", "cpu")
    timings = []
    for _ in range(2):
        job = queued_job(repo, storage, trained, clip)
        start = time.perf_counter()
        assert ConversionRun(repo, storage, settings, cache, job).run() == "succeeded"
        timings.append(time.perf_counter() - start)
    cold, warm = timings

    folder = next((root / "voices").iterdir())
    out = root / "cli-out.wav"
    cli = [str(Path(sys.executable).with_name("svc")), "infer", str(clip), "-o", str(out),
           "-m", str(folder / "model.pth"), "-c", str(folder / "config.json"), "-t", "0",
           "-fm", "dio", "-na", "-db", "-40", "-mc", "10", "-d", "cpu"]  # fmt: skip
    cli_seconds, cli_rss = run_measured(cli, os.environ | {"HF_HUB_OFFLINE": "1"})

    print(f"input {seconds:.0f} s, tiny model, CPU\n")
    print(f"pipeline cold (loads ContentVec + model)  {cold:6.2f} s   RTF {cold / seconds:.3f}")
    print(f"pipeline warm (cache hit)                 {warm:6.2f} s   RTF {warm / seconds:.3f}")
    print(
        f"fork `svc infer` (reloads per call)       {cli_seconds:6.2f} s   RTF "
        f"{cli_seconds / seconds:.3f}   peak RSS {cli_rss:.0f} MB"
    )
    print(f"warm pipeline / CLI                        {warm / cli_seconds:6.2f}x")
    print()
    for minutes in (1, 10):
        long_clip = root / f"{minutes}min.wav"
        sf.write(long_clip, voice(minutes * 60, seed=minutes)[:, 0], 44100)
        job = queued_job(repo, storage, trained, long_clip)
        took, rss = run_measured([sys.executable, "-m", "gpu", "convert", str(job)], env)
        print(f"{minutes:2d} min input: worker process {took:6.1f} s, peak RSS {rss:6.0f} MB")


if __name__ == "__main__":
    main()
