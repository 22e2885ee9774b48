"""The GPU path measured from the repo, in one run: separation, pitch, conversion (cold, warm,
and where the warm time goes) and training (train-only and all-in seconds a step, the first
step's latency, validation and checkpoint cost, peak memory, minutes projected for the preset's
steps), and with `--only` song mode phase by phase, the instant tier (bench/instant.py) and
text in a voice (bench/text.py), at the real architecture sizes with random weights on
synthetic audio (the figures depend on the sizes, not the values; bench/gpu_weights.py).
Prints one table, writes JSON.

    .venv/bin/python -m bench.gpu                       # a GPU machine, about 5 minutes
    .venv/bin/python -m bench.gpu --cap-gib 22          # as if on an L4/A10G's 22 GiB
    .venv/bin/python -m bench.gpu --profile             # and where a training step goes
    .venv/bin/python -m bench.gpu --only levers         # training's speed levers side by side
    .venv/bin/python -m bench.gpu --only levers --lever compiled "compiled, CUDA graphs"
    .venv/bin/python -m bench.gpu --only levers --lever "one length, cuDNN benchmark" \
        "one length, all compiled" "one length, all compiled, cached"
    .venv/bin/python -m bench.gpu --only song instant text  # the other job kinds
    .venv/bin/python -m bench.gpu --small               # tiny sizes on a CPU (the suite's)
    .venv/bin/python -m bench.gpu --small --only training --discriminator-divisor 1
                                                        # the tiny step with the full-width D

Ratios printed are measured side by side in the same run; `--small`'s seconds say nothing of
a GPU's.
"""

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.gpu_train import peak_gib, sync, timer, wrapped
from tests.audio import voice


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    sync()
    started = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - started, result


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def stereo_song(seconds: float) -> np.ndarray:
    left, right = voice(seconds, f0=220, seed=1)[:, 0], voice(seconds, f0=110, seed=2)[:, 0]
    return np.stack([left + 0.5 * right, right + 0.5 * left], axis=1).astype(np.float32)


def separation(cache: Path, work: Path, seconds: float, device: str) -> dict[str, Any]:
    from gpu.separation.separate import separate

    song = work / "song.wav"
    sf.write(song, stereo_song(seconds), 44100)

    def run() -> None:
        separate(song, work / "v.wav", work / "i.wav", cache_dir=cache, device=device)

    reset_peak()
    cold, _ = timed(run)
    warm, _ = timed(run)
    return {"seconds_of_audio": seconds, "cold_s": cold, "warm_s": warm,
            "rtf_warm": warm / seconds, "peak_gib": peak_gib()}  # fmt: skip


def pitch(seconds: float) -> dict[str, Any]:
    from gpu.measures import f0

    audio = voice(seconds, f0=220, seed=3)[:, 0].astype(np.float32)
    found = {}
    for method in ("fcpe", "rmvpe"):
        f0.track(audio[:44100], 44100, 512, method)  # loads the model
        warm, _ = timed(lambda m=method: f0.track(audio, 44100, 512, m))
        found[method] = {"warm_s": warm, "rtf": warm / seconds}
    return found


def conversion(model: Path, config: Path, seconds: float, device: str) -> dict[str, Any]:
    """Cold (loading ContentVec and the voice) and warm; the warm call's content, pitch and
    generator seconds."""
    import so_vits_svc_fork.f0 as fork_f0
    from so_vits_svc_fork import utils

    from gpu.conversion.inference import convert, load_svc
    from schemas.jobs import ConversionParams

    audio = voice(seconds, f0=200, seed=4)[:, 0].astype(np.float32)
    params = ConversionParams(f0_method="fcpe")
    reset_peak()
    cold, svc = timed(lambda: load_svc(model, config, device))
    first, _ = timed(lambda: convert(svc, audio, params))
    parts: dict[str, list[float]] = {"content": [], "pitch": [], "generator": []}
    with (
        wrapped(utils, "get_content", timer(parts["content"])),
        wrapped(fork_f0, "compute_f0", timer(parts["pitch"])),
        wrapped(svc.net_g, "infer", timer(parts["generator"])),
    ):
        warm, _ = timed(lambda: convert(svc, audio, params))
    return {"seconds_of_audio": seconds, "cold_s": cold + first, "warm_s": warm,
            "rtf_warm": warm / seconds, "peak_gib": peak_gib()} | {
        f"warm_{k}_s": sum(v) for k, v in parts.items()}  # fmt: skip


def song_mode(
    cache: Path, work: Path, model: Path, config: Path, seconds: float, device: str
) -> dict[str, Any]:
    """A whole song as a conversion job runs it (gpu/conversion/song.py), phase by phase:
    separate, the vocal to mono at the voice's rate, convert, mix. Warm: the separation and
    the voice are loaded by one untimed run of the same song first."""
    from gpu.conversion.audio_io import to_mono
    from gpu.conversion.inference import convert, load_svc
    from gpu.conversion.mix import mix
    from gpu.separation.separate import separate
    from schemas.jobs import ConversionParams

    work.mkdir(parents=True, exist_ok=True)
    source = work / "song.wav"
    sf.write(source, stereo_song(seconds), 44100)
    svc = load_svc(model, config, device)
    params = ConversionParams(f0_method="fcpe")
    vocals, instrumental, mono = work / "v.wav", work / "i.wav", work / "mono.wav"
    outputs = {part: work / f"out-{part}.wav" for part in ("mix", "vocal", "instrumental")}
    converted = work / "converted.wav"

    def phases() -> dict[str, float]:
        took = {}
        took["separate"], _ = timed(
            lambda: separate(source, vocals, instrumental, cache_dir=cache, device=device)
        )
        took["to_mono"], _ = timed(lambda: to_mono(vocals, mono, svc.target_sample))
        audio, _ = sf.read(mono, dtype="float32")
        took["convert"], out = timed(lambda: convert(svc, audio, params))
        sf.write(converted, out, svc.target_sample)
        took["mix"], _ = timed(lambda: mix(converted, vocals, instrumental, outputs))
        return took

    reset_peak()
    phases()
    took = phases()
    total = sum(took.values())
    return {"seconds_of_audio": seconds, "warm_s": total, "rtf_warm": total / seconds,
            "peak_gib": peak_gib()} | {f"warm_{k}_s": v for k, v in took.items()}  # fmt: skip


def text_in_a_voice(root: Path, small: bool) -> dict[str, Any]:
    """bench/text.py's lines (50, 100, 500 characters) through Piper's packaged voice and a
    voice at the real (or tiny) size, in this run's model cache."""
    from bench import text

    found = text.run(root, argparse.Namespace(small=small, engine="piper", f0_method="fcpe",
                                              repeat=2, recorded=None))  # fmt: skip
    return found["lines"]


def training(work: Path, args: argparse.Namespace, out: dict[str, Any]) -> tuple[Path, Path]:
    from bench import gpu_train
    from gpu.training.trainer import export_generator
    from pipeline.settings import Settings
    from schemas.jobs import PRESET_CAPS

    config, features = gpu_train.prepare(work, args.dataset_seconds, args.small)
    if args.discriminator_divisor is not None:  # the tiny preset's narrowed D, or the fork's
        written = json.loads(config.read_text())
        written["train"]["discriminator_divisor"] = args.discriminator_divisor
        config.write_text(json.dumps(written))
    out["features"] = {"dataset_seconds": args.dataset_seconds, "seconds": features}
    run = gpu_train.fresh_model_dir(config, "train")
    measured = gpu_train.train(run, args.steps, args.validate_every, args.checkpoint_seconds)
    defaults = {
        k: Settings.model_fields[k].default for k in ("validate_every_steps", "checkpoint_seconds")
    }
    cap = PRESET_CAPS["tiny" if args.small else "standard"][0]
    projected = gpu_train.projection(
        measured, defaults["validate_every_steps"], defaults["checkpoint_seconds"]
    )
    per_step = projected["all_in_s_per_step"]
    out["training"] = measured | projected | {
        "schedule": defaults,
        "projected_minutes": {str(n): (measured["first_step_seconds"] + n * per_step) / 60
                              for n in (1000, 2000, cap)},
    }  # fmt: skip
    if args.profile:
        profiled = gpu_train.fresh_model_dir(config, "profile")
        out["profile"] = gpu_train.profile(
            profiled, args.profile_steps, args.json.with_suffix(".txt")
        )
    model = work / "model.pth"
    export_generator(run.parent / "model", model)
    return model, run


def table(out: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []

    def add(what: str, value: Any, unit: str = "") -> None:
        if value is None:
            return
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        rows.append((what, f"{text} {unit}".strip()))

    s, c, t = out.get("separation", {}), out.get("conversion", {}), out.get("training", {})
    add(f"separation {s.get('seconds_of_audio', 0):.0f} s stereo: cold", s.get("cold_s"), "s")
    add("separation: warm (RTF)", s.get("rtf_warm"))
    add("separation: peak", s.get("peak_gib"), "GiB")
    for method, found in out.get("pitch", {}).items():
        add(f"pitch {method}: warm RTF", found["rtf"])
    add(f"conversion {c.get('seconds_of_audio', 0):.0f} s: cold", c.get("cold_s"), "s")
    add("conversion: warm", c.get("warm_s"), "s")
    for part in ("content", "pitch", "generator"):
        add(f"  of which {part}", c.get(f"warm_{part}_s"), "s")
    add("conversion: peak", c.get("peak_gib"), "GiB")
    g = out.get("song", {})
    add(f"song mode {g.get('seconds_of_audio', 0):.0f} s stereo: warm", g.get("warm_s"), "s")
    for part in ("separate", "to_mono", "convert", "mix"):
        add(f"  of which {part}", g.get(f"warm_{part}_s"), "s")
    add("song mode: peak", g.get("peak_gib"), "GiB")
    i = out.get("instant", {})
    for line in i.get("inputs", []):
        add(f"instant {line['seconds_of_audio']:.0f} s input ({i['steps']} steps): warm",
            f"{line['seconds']:.3f} s (RTF {line['rtf']:.3f})")  # fmt: skip
    for chars, line in out.get("text", {}).items():
        add(f"text {chars} characters: warm", f"{line['seconds']:.3f} s "
            f"for {line['audio_seconds']:.1f} s of speech")  # fmt: skip
    f = out.get("features", {})
    add(f"features for {f.get('dataset_seconds', 0):.0f} s of dataset", f.get("seconds"), "s")
    add("training: train-only", t.get("train_only_s_per_step"), "s/step")
    add("training: loop (with loading)", t.get("loop_s_per_step"), "s/step")
    add("training: all-in at the settings' schedule", t.get("all_in_s_per_step"), "s/step")
    add("  all-in / train-only (goal <= 1.15)", t.get("all_in_over_train_only"), "x")
    add("  before: per-epoch validation and checkpoint", t.get("old_all_in_s_per_step"), "s/step")
    add("  before: all-in / train-only", t.get("old_all_in_over_train_only"), "x")
    add("training: all-in measured in this run", t.get("measured_all_in_s_per_step"), "s/step")
    add("training: first step after fit starts", t.get("first_step_seconds"), "s")
    add("training: one validation, batched", t.get("validation_seconds"), "s")
    add("  one piece at a time (before)", t.get("validation_one_piece_at_a_time_s"), "s")
    add("training: full checkpoint (G, D, optimizers)", t.get("checkpoint_seconds"), "s")
    add("training: best generator save", t.get("best_generator_seconds"), "s")
    add("training: peak", t.get("peak_gib"), "GiB")
    for steps, minutes in t.get("projected_minutes", {}).items():
        add(f"training: {steps} steps projected", minutes, "min")
    for lever, found in out.get("levers", {}).items():
        if "error" in found or "loop_vs_today" not in found:
            add(f"lever {lever}", found.get("error", "no baseline"))
            continue
        add(
            f"lever {lever}: loop s/step (x today)",
            f"{found['loop_s_per_step']:.3f} ({found['loop_vs_today']:.2f}x)",
        )
        add(
            "  per piece x today / val loss / peak GiB",
            f"{found['piece_vs_today']:.2f}x / {found['val_loss']} / {found['peak_gib']}",
        )
    p = out.get("profile", {})
    add("profile: step wall", p.get("wall_ms_per_step"), "ms")
    add("profile: device kernels", p.get("kernels_ms_per_step"), "ms")
    for part, found in p.get("parts", {}).items():
        add(f"  {part}: host / device", f"{found['host_ms']:.1f} / {found['device_ms']:.1f}", "ms")
    width = max(len(w) for w, _ in rows)
    return "\n".join(f"{what:<{width}}  {value}" for what, value in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes, CPU, seconds")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--levers", action="store_true", help="training levers side by side")
    parser.add_argument("--lever", nargs="+", help="only these levers (and today's)")
    parser.add_argument("--lever-steps", type=int, help="steps a lever trains (30; --small: 3)")
    parser.add_argument("--cap-gib", type=float, help="cap this process's GPU memory")
    parser.add_argument("--discriminator-divisor", type=int,
                        help="train with the fork's discriminator this many times narrower "
                             "(1: full width; the tiny preset's default is 16)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=Path("bench-gpu.json"))
    parser.add_argument("--only", nargs="+", default=["separation", "pitch", "training"],
                        choices=["separation", "pitch", "training", "song", "levers", "instant",
                                 "text"])  # fmt: skip
    args = parser.parse_args()
    full = not args.small
    args.audio_seconds = 180.0 if full else 6.0
    args.dataset_seconds = 600.0 if full else 36.0
    args.steps = 60 if full else 4
    args.validate_every = 20 if full else 2
    args.checkpoint_seconds = 10.0 if full else 0.0
    args.profile_steps = 10 if full else 2
    args.lever_steps = args.lever_steps or (30 if full else 3)
    logging.disable(logging.WARNING)
    out = run(args)
    print(table(out))
    args.json.write_text(json.dumps(out, indent=2))
    print(f"\nwritten: {args.json}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gpu.weights import use_cache

    full = not args.small
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "models"
        use_cache(cache, offline=True)  # before the fork is imported
        import torch

        from bench.gpu_train import cap_memory
        from bench.gpu_weights import write_all
        from gpu.measures import f0

        device = "cuda" if torch.cuda.is_available() and not args.small else "cpu"
        if device == "cuda":
            cap_memory(args.cap_gib)
        write_all(cache, args.small)
        f0.install(cache)
        out: dict[str, Any] = {
            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
            "small": args.small,
            "torch": torch.__version__,
            "cap_gib": args.cap_gib,
        }
        if "separation" in args.only:
            out["separation"] = separation(cache, root, args.audio_seconds, device)
        if "pitch" in args.only:
            out["pitch"] = pitch(args.audio_seconds)
        if args.levers or "levers" in args.only:
            from bench import gpu_train

            config, _ = gpu_train.prepare(root / "levers", args.dataset_seconds, args.small)
            out["levers"] = gpu_train.levers(
                config, args.lever_steps, args.lever, cache, args.cap_gib
            )
        if "training" in args.only or "song" in args.only:
            model, run_config = training(root / "train", args, out)
            out["conversion"] = conversion(model, run_config, args.audio_seconds, device)
            if "song" in args.only:
                out["song"] = song_mode(
                    cache, root / "song", model, run_config, args.audio_seconds, device
                )
        if "instant" in args.only:
            from bench import instant

            seconds = [30.0, 180.0] if full else [3.0]
            out["instant"] = instant.measure(device, 30 if full else 4, seconds, tiny=not full)
        if "text" in args.only:
            out["text"] = text_in_a_voice(root, args.small)
        return out


if __name__ == "__main__":
    main()
