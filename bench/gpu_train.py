"""Training for `bench/gpu.py`: a synthetic dataset, its features, a run of the pipeline's own
`gpu.training.trainer.fit` with each part of a step timed, and `--profile`'s breakdown of a step.

Timings come from wrapping the fork's methods (synchronised on CUDA, so a kernel's time is
charged where it was launched): `training_step` is the training alone; the loop's wall time
between steps adds data loading and Lightning; validation, the full checkpoint and the best
generator's save are timed where `gpu.training.validation` does them.
"""

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from gpu.training.compiled import FIXED_SHAPES, PARTS
from gpu.training.lengths import LONGEST
from tests.audio import voice


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


@contextlib.contextmanager
def wrapped(owner: Any, name: str, around: Callable[[Callable, tuple, dict], Any]) -> Iterator:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return around(original, args, kwargs)

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def timer(times: list[float], at: list[tuple[float, float]] | None = None) -> Callable:
    """Appends each call's seconds to `times` (and when it ended, with them, to `at`)."""

    def around(fn: Callable, args: tuple, kwargs: dict) -> Any:
        sync()
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        sync()
        ended = time.perf_counter()
        times.append(ended - started)
        if at is not None:
            at.append((ended, ended - started))
        return result

    return around


def dataset(work: Path, seconds: float, small: bool) -> Path:
    """Pieces of 4-10 s (as the fork's split leaves them: lengths vary, so shapes do), named
    as `preprocess_split` names them, from several source files."""
    folder = work / "dataset" / "44k" / "voice"
    folder.mkdir(parents=True, exist_ok=True)
    rng, total, i = random.Random(0), 0.0, 0
    while total < seconds:
        length = rng.uniform(3.0, 5.0) if small else rng.uniform(4.0, 10.0)
        audio = voice(length, f0=160 + 10 * (i % 12), seed=i)[:, 0]
        sf.write(folder / f"take{i % 8}_{i * 10:.3f}_{i * 10 + length:.3f}.wav", audio, 44100)
        total, i = total + length, i + 1
    return folder.parent


def prepare(work: Path, seconds: float, small: bool) -> tuple[Path, float]:
    """The config (the preset's, as a job writes it) and the features; the features' time."""
    from gpu.training.prepare import extract_features, write_config
    from gpu.training.presets import STANDARD, TINY

    data = dataset(work, seconds, small)
    config_path = write_config(data, work, TINY if small else STANDARD, 10_000, seed="bench")
    started = time.perf_counter()
    extract_features(data, config_path, "fcpe")
    return config_path, time.perf_counter() - started


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def train(
    config_path: Path,
    steps: int,
    validate_every: int,
    checkpoint_seconds: float,
    speed: Any = None,
) -> dict[str, Any]:
    """One `fit` of `steps` steps from the config's model dir (random initial weights)."""
    from gpu.training.schedule import Schedule
    from gpu.training.trainer import fit
    from gpu.training.validation import ValidatedVits, held_out_batches

    step_times, validations, checkpoints, bests, ends = [], [], [], [], []
    done_at: list[tuple[float, float]] = []  # when each validation or save ended, its seconds
    old_way: dict[str, float] = {}
    extra: list[tuple[float, float]] = []  # the old way's validation: not this run's cost

    def sink(progress: dict) -> bool:
        ends.append(time.perf_counter())
        return True

    def validate_also_one_at_a_time(fn: Callable, args: tuple, kwargs: dict) -> Any:
        """The first time, also the old validation: each held-out piece alone (batch 1),
        after the batched one (so the first call's warm-up is not charged to the old way)."""
        module = args[0]
        result = fn(*args, **kwargs)
        if not old_way:
            one_by_one = [tuple(t.to(module.device) for t in b)
                          for b in held_out_batches(module.hparams, 1)]  # fmt: skip
            seconds: list[float] = []
            timer(seconds, done_at)(loss_of, (module, one_by_one), {})
            extra.append(done_at[-1])
            old_way.update(validation_seconds=seconds[0],
                           steps_per_epoch=float(module.trainer.num_training_batches))  # fmt: skip
        return result

    loss_of = ValidatedVits._held_out_loss
    _reset_peak()
    schedule = Schedule(validate_every=validate_every, checkpoint_seconds=checkpoint_seconds)
    with (
        wrapped(ValidatedVits, "training_step", timer(step_times)),
        wrapped(ValidatedVits, "_held_out_loss", timer(validations, done_at)),
        wrapped(ValidatedVits, "save_checkpoints", timer(checkpoints, done_at)),
        wrapped(ValidatedVits, "_save_best", timer(bests, done_at)),
        wrapped(ValidatedVits, "validate", validate_also_one_at_a_time),
    ):
        started = time.perf_counter()
        result = fit(config_path, steps, 0.0, sink, schedule, speed)
        wall = time.perf_counter() - started
    # Between the first and the last step's end: training, loading, Lightning, and whatever
    # validation and saves fell in between (the end's own come after the last step).
    window = ends[-1] - ends[0]
    inside = sum(d for t, d in done_at if ends[0] < t <= ends[-1])
    measuring = sum(d for t, d in extra if ends[0] < t <= ends[-1])
    return {
        "steps": result.steps,
        "fit_seconds": wall,
        "first_step_seconds": result.metrics["first_step_seconds"],
        "train_only_s_per_step": float(np.median(step_times[1:] or step_times)),
        "loop_s_per_step": (window - inside) / max(len(ends) - 1, 1),
        "measured_all_in_s_per_step": (window - measuring) / max(len(ends) - 1, 1),
        "validation_seconds": float(np.median(validations)) if validations else None,
        "validations": len(validations),
        "checkpoint_seconds": float(np.median(checkpoints)) if checkpoints else None,
        "checkpoints": len(checkpoints),
        "best_generator_seconds": float(np.median(bests)) if bests else None,
        "peak_gib": peak_gib(),
        "val_loss": result.best_val_loss,
        "old_way": old_way,
    }


def projection(measured: dict[str, Any], validate_every: int, checkpoint_seconds: float) -> dict:
    """All-in seconds a step at the settings' schedule, from the parts measured: the loop,
    a validation (and, at worst, a best generator's save) every `validate_every` steps, a
    full checkpoint every `checkpoint_seconds`. Beside it, the same parts on the schedule
    before issue 25: each piece validated alone and a full checkpoint every epoch."""
    loop, train_only = measured["loop_s_per_step"], measured["train_only_s_per_step"]
    validation = (measured["validation_seconds"] or 0) + (measured["best_generator_seconds"] or 0)
    checkpoint = measured["checkpoint_seconds"] or 0
    all_in = loop + validation / validate_every + checkpoint * loop / max(checkpoint_seconds, 1)
    found = {"all_in_s_per_step": all_in, "all_in_over_train_only": all_in / train_only}
    old = measured.get("old_way")
    if old:
        per_epoch = old["validation_seconds"] + checkpoint
        old_all_in = loop + per_epoch / old["steps_per_epoch"]
        found |= {
            "old_all_in_s_per_step": old_all_in,
            "old_all_in_over_train_only": old_all_in / train_only,
            "validation_one_piece_at_a_time_s": old["validation_seconds"],
        }
    return found


PROFILED = {
    "generator": ("so_vits_svc_fork.modules.synthesizers", "SynthesizerTrn", "forward"),
    "discriminator": ("so_vits_svc_fork.modules.descriminators", "MultiPeriodDiscriminator",
                      "forward"),
    "backward": ("so_vits_svc_fork.train", "VitsLightning", "manual_backward"),
}  # fmt: skip
# Ranges torch.profiler names itself: an optimizer's step, the loader's next batch.
OWN_NAMES = {"optimizer": "Optimizer.step#", "data loading": "enumerate(DataLoader)"}
LOSSES = ("mel_spectrogram_torch", "kl_loss", "feature_loss", "generator_loss",
          "discriminator_loss")  # fmt: skip


def profile(config_path: Path, steps: int, out: Path) -> dict[str, Any]:
    """Where a step's time goes, by torch.profiler over `steps` steps after two warm-up
    ones: host (CPU) and device (GPU) milliseconds a step for the generator, discriminator,
    losses, backward, optimizer and data loading, and the device's busy share of the wall."""
    import importlib

    import so_vits_svc_fork.train as fork_train
    import torch
    from torch.profiler import ProfilerActivity, record_function, schedule

    from gpu.training.schedule import Schedule
    from gpu.training.trainer import fit
    from gpu.training.validation import ValidatedVits

    def labelled(label: str) -> Callable[[Callable, tuple, dict], Any]:
        def around(fn: Callable, args: tuple, kwargs: dict) -> Any:
            with record_function(label):
                return fn(*args, **kwargs)

        return around

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    walls: list[float] = []
    with contextlib.ExitStack() as stack:
        for label, (module, cls, method) in PROFILED.items():
            owner = getattr(importlib.import_module(module), cls)
            stack.enter_context(wrapped(owner, method, labelled(label)))
        for name in LOSSES:
            stack.enter_context(wrapped(fork_train, name, labelled("losses")))
        prof = stack.enter_context(
            torch.profiler.profile(
                activities=activities, schedule=schedule(wait=1, warmup=1, active=steps)
            )
        )

        def step_then_tick(fn: Callable, args: tuple, kwargs: dict) -> Any:
            result = fn(*args, **kwargs)
            sync()
            walls.append(time.perf_counter())
            prof.step()
            return result

        stack.enter_context(wrapped(ValidatedVits, "training_step", step_then_tick))
        schedule_ = Schedule(validate_every=10**6, checkpoint_seconds=10**9)
        fit(config_path, steps + 2, 0.0, lambda _: True, schedule_)
    events = prof.key_averages()
    per_step: dict[str, dict[str, float]] = {}
    names = {label: label for label in [*PROFILED, "losses"]} | OWN_NAMES
    for label, name in names.items():
        found = [e for e in events if e.key == name or (name in OWN_NAMES.values()
                                                        and e.key.startswith(name))]  # fmt: skip
        per_step[label] = {
            "host_ms": sum(e.cpu_time_total for e in found) / 1e3 / steps,
            "device_ms": sum(_device_us(e) for e in found) / 1e3 / steps,
        }
    wall_ms = (walls[-1] - walls[-steps - 1]) * 1e3 / steps if len(walls) > steps else None
    ranges = {*names, *PROFILED, "losses"}
    kernels_ms = sum(_self_device_us(e) for e in events
                     if not _is_range(e.key, ranges)) / 1e3 / steps  # fmt: skip
    out.write_text(
        events.table(sort_by="self_device_time_total" if len(activities) > 1 else "cpu_time_total",
                     row_limit=40)
    )  # fmt: skip
    return {
        "steps": steps,
        "wall_ms_per_step": wall_ms,
        "kernels_ms_per_step": kernels_ms,
        "device_busy": kernels_ms / wall_ms if wall_ms else None,
        "parts": per_step,
        "table": str(out),
    }


def _is_range(key: str, labels: set[str]) -> bool:
    """A range the profiler or we named (it holds kernels, so counting it counts them twice)."""
    return key in labels or key.startswith(("ProfilerStep", *OWN_NAMES.values()))


TF32_PINNED = {"tf32": True, "pin_memory": True, "workers": 4}
BUCKETS = {"length_bucket": 128, "cudnn_benchmark": True}
ONE_LENGTH = {"length_bucket": LONGEST, "cudnn_benchmark": True}
ALL_COMPILED = {**ONE_LENGTH, "compile": tuple(PARTS)}
LEVERS = {  # name: (Speed's arguments, batch size or None for the preset's)
    "fp32 (today)": ({}, None),
    "bf16-mixed": ({"precision": "bf16-mixed"}, None),
    "tf32 matmul": ({"tf32": True}, None),
    "pinned, 4 workers": ({"pin_memory": True, "workers": 4}, None),
    "all of them": ({"precision": "bf16-mixed", **TF32_PINNED}, None),
    "all, batch 32": ({"precision": "bf16-mixed", **TF32_PINNED}, 32),
    "tf32, pinned": (TF32_PINNED, None),
    "tf32, pinned, batch 32": (TF32_PINNED, 32),
    # today's Speed() (TF32, pinned) with parts compiled
    "compiled": ({"compile": FIXED_SHAPES}, None),
    "compiled, CUDA graphs": ({"compile": FIXED_SHAPES, "compile_mode": "reduce-overhead"}, None),
    "compiled with encoder and flow": ({"compile": (*FIXED_SHAPES, "posterior", "flow")}, None),
    "fused AdamW": ({"fused_optimizer": True}, None),
    # batches padded to a few lengths (gpu.training.lengths), so what is paid per shape pays
    "buckets of 128, cuDNN benchmark": (BUCKETS, None),
    "one length, cuDNN benchmark": (ONE_LENGTH, None),
    "one length, all compiled": (ALL_COMPILED, None),
    # the same again: its first step reads the kernels the last one cached, as a later
    # training container does from the work volume
    "one length, all compiled, cached": (ALL_COMPILED, None),
    "one length, all compiled, CUDA graphs": (
        {**ALL_COMPILED, "compile_mode": "reduce-overhead"}, None),
    "one length, all compiled, CUDA graphs, fused AdamW": (
        {**ALL_COMPILED, "compile_mode": "reduce-overhead", "fused_optimizer": True}, None),
}  # fmt: skip


def levers(
    config_path: Path,
    steps: int,
    names: list[str] | None,
    models: Path,
    cap_gib: float | None,
) -> dict[str, Any]:
    """Each lever of `gpu.training.speed` trained side by side from the same config and seed:
    train-only and loop seconds a step, seconds per training piece, the held-out loss at the
    end (equal steps, so quality parity shows), peak memory, the first step's latency; ratios
    against today's. Each lever trains in a process of its own, as a new container would
    (nothing autotuned, compiled or loaded before), with a compile cache of its own, but
    "…, cached", which reads the cache its lever before it left."""
    found: dict[str, Any] = {}
    chosen = ["fp32 (today)", *(n for n in names or LEVERS if n != "fp32 (today)")]
    for i, name in enumerate(chosen):
        options, batch = LEVERS[name]
        run = fresh_model_dir(config_path, "lever-" + str(i), batch)
        batch_size = json.loads(run.read_text())["train"]["batch_size"]
        cached = name.endswith(", cached") and i > 0
        cache = config_path.parent / f"compile-cache-{i - 1 if cached else i}"
        try:
            measured = in_own_process(_lever, run, steps, options, models, cache, cap_gib)
        except Exception as error:  # one lever failing must not lose the others' figures
            found[name] = {"error": f"{type(error).__name__}: {error}"[:300]}
            continue
        found[name] = measured | {"s_per_piece": measured["loop_s_per_step"] / batch_size}
    base = found["fp32 (today)"]
    for row in found.values():
        if "error" in row or "error" in base:
            continue
        row["loop_vs_today"] = row["loop_s_per_step"] / base["loop_s_per_step"]
        row["piece_vs_today"] = row["s_per_piece"] / base["s_per_piece"]
    return found


def in_own_process(fn: Callable[..., dict], *args: Any) -> dict:
    """`fn(*args)` in a spawned process (not a pool's: a training's loader starts workers of
    its own), its dict back through a file."""
    import multiprocessing
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        process = multiprocessing.get_context("spawn").Process(
            target=_to_file, args=(fn, args, out)
        )
        process.start()
        process.join()
        if process.exitcode or not out.exists():
            raise RuntimeError(f"the process exited with {process.exitcode}")
        return json.loads(out.read_text())


def _to_file(fn: Callable[..., dict], args: tuple, out: Path) -> None:
    out.write_text(json.dumps(fn(*args)))


def _lever(
    config_path: Path,
    steps: int,
    options: dict[str, Any],
    models: Path,
    compile_cache: Path,
    cap_gib: float | None,
) -> dict[str, Any]:
    """One lever's run, set up as `bench.gpu.run` sets up its own process."""
    import logging
    import os

    from gpu.weights import use_cache

    logging.disable(logging.WARNING)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(compile_cache)
    use_cache(models, offline=True)  # before the fork is imported
    from gpu.measures import f0
    from gpu.training.speed import Speed

    f0.install(models)
    cap_memory(cap_gib)
    measured = train(config_path, steps, max(steps - 1, 1), 10**9, Speed(**options))
    keys = ("train_only_s_per_step", "loop_s_per_step", "val_loss", "peak_gib",
            "first_step_seconds")  # fmt: skip
    return {key: measured[key] for key in keys}


def cap_memory(cap_gib: float | None) -> None:
    """This process's GPU memory capped, as on a smaller GPU (an L4/A10G's 22 GiB)."""
    import torch

    if cap_gib and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(cap_gib / total, 1.0))


def _device_us(event: Any) -> float:
    return float(getattr(event, "device_time_total", getattr(event, "cuda_time_total", 0.0)))


def _self_device_us(event: Any) -> float:
    return float(
        getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0))
    )


def fresh_model_dir(config_path: Path, name: str, batch_size: int | None = None) -> Path:
    """A copy of the config training into its own model dir (each run starts from scratch)."""
    config = json.loads(config_path.read_text())
    if batch_size:
        config["train"]["batch_size"] = batch_size
    folder = config_path.parent / name
    folder.mkdir(parents=True, exist_ok=True)
    config["model_dir"] = str(folder / "model")
    target = folder / "config.json"
    target.write_text(json.dumps(config))
    return target
