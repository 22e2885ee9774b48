"""Turns a user's ready dataset into what the fork trains on, in its own layout:
`raw/` downloads → `normalized/` mono, loudness-normalised → `dataset_raw/voice/` pieces of at
most 10 s split on silence → `dataset/44k/voice/` (the fork's resample) → `config.json` from
the template with the preset → ContentVec + F0 features (`*.data.pt`).

Every stage leaves a marker, so a retried job continues where its last attempt stopped.
"""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from gpu.errors import JobFailure
from gpu.training import held_out
from gpu.training.presets import TEMPLATE, Preset, apply
from pipeline.storage import Storage
from schemas.jobs import HeldOut, Phase, TrainingInput

log = logging.getLogger(__name__)
InputCheck = Callable[[Path, TrainingInput], None]  # raises JobFailure for a bad input
SPEAKER = "voice"
SAMPLE_RATE = 44100
TARGET_LUFS = -20.0
MIN_PIECES = 5  # the fork's own floor; `gpu.training.held_out` then keeps 4 of them training
HELD_OUT_FILE = "held_out.json"


def _done(work: Path, stage: str) -> bool:
    return (work / f".{stage}.done").exists()


def _mark(work: Path, stage: str) -> None:
    (work / f".{stage}.done").touch()


def download(
    storage: Storage, inputs: list[TrainingInput], work: Path, check: InputCheck | None = None
) -> list[Path]:
    """Each file exactly as it was probed (see `gpu.sealed`), checked by `check` before any
    GPU work; a file kept from an earlier attempt was checked then."""
    from gpu.sealed import fetch_sealed

    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in inputs:
        path = raw / f"{item.id}{Path(item.object_key).suffix.lower()}"
        if not path.exists():
            partial = path.with_suffix(path.suffix + ".part")
            fetch_sealed(storage, item, partial)
            if check is not None:
                check(partial, item)
            partial.rename(path)
        paths.append(path)
    return paths


def normalize(paths: list[Path], work: Path) -> Path:
    """Mono, float, each file brought to the same integrated loudness."""
    import pyloudnorm

    out = work / "normalized"
    out.mkdir(exist_ok=True)
    for path in paths:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        loudness = pyloudnorm.Meter(rate).integrated_loudness(mono)
        if np.isfinite(loudness):
            mono = pyloudnorm.normalize.loudness(mono, loudness, TARGET_LUFS)
        peak = float(np.abs(mono).max(initial=0.0))
        if peak > 0.99:
            mono = mono * (0.99 / peak)
        sf.write(out / f"{path.stem}.wav", mono, rate, subtype="FLOAT")
    return out


def split_and_resample(normalized: Path, work: Path) -> Path:
    from so_vits_svc_fork.preprocessing.preprocess_resample import preprocess_resample
    from so_vits_svc_fork.preprocessing.preprocess_split import preprocess_split

    pieces = work / "dataset_raw" / SPEAKER
    preprocess_split(normalized, pieces, SAMPLE_RATE, max_length=10.0, n_jobs=1)
    dataset = work / "dataset" / "44k"
    preprocess_resample(work / "dataset_raw", dataset, SAMPLE_RATE, n_jobs=1)
    count = len(list((dataset / SPEAKER).glob("*.wav")))
    if count < MIN_PIECES:
        raise JobFailure(
            "DATASET_TOO_SHORT",
            f"The dataset split into {count} usable pieces; training needs at least {MIN_PIECES}.",
        )
    return dataset


def write_config(
    dataset: Path, work: Path, preset: Preset, total_steps: int, seed: str = ""
) -> Path:
    """The fork's config with our own split: the pieces `held_out` chooses (seeded by the
    job) are the validation list, every other piece trains; the fork's random train/val/test
    split is overwritten (it kept two pieces out for a test list nothing reads)."""
    from so_vits_svc_fork.preprocessing.preprocess_flist_config import preprocess_config

    config_path = work / "config.json"
    lists = work / "filelists"
    preprocess_config(
        dataset, lists / "train.txt", lists / "val.txt", lists / "test.txt", config_path, TEMPLATE
    )
    config = json.loads(config_path.read_text())
    split = split_held_out(lists, seed)
    (lists / "train.txt").write_text("\n".join(p.path.as_posix() for p in split.train))
    for name in ("val.txt", "test.txt"):
        (lists / name).write_text("\n".join(p.path.as_posix() for p in split.held_out))
    record = HeldOut(
        pieces=len(split.held_out),
        files=len({p.source for p in split.held_out}),
        seconds=round(split.held_out_seconds, 2),
        target_seconds=round(split.target_seconds, 2),
        names=[p.path.name for p in split.held_out],
    )
    (work / HELD_OUT_FILE).write_text(record.model_dump_json())
    steps_per_epoch = max(1, len(split.train) // preset.batch_size)
    apply(config, preset, steps_per_epoch, total_steps)
    config["model_dir"] = str(work / "model")
    config_path.write_text(json.dumps(config, indent=2))
    return config_path


def split_held_out(lists: Path, seed: str) -> held_out.Split:
    """Every piece the fork listed (it skips those under 0.3 s), split by `held_out`."""
    paths = [
        Path(line)
        for name in ("train.txt", "val.txt", "test.txt")
        for line in (lists / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    pieces = [held_out.Piece(path, sf.info(str(path)).duration) for path in sorted(set(paths))]
    return held_out.choose(pieces, seed)


def read_held_out(work: Path) -> HeldOut | None:
    path = work / HELD_OUT_FILE
    return HeldOut.model_validate_json(path.read_text()) if path.exists() else None


def extract_features(dataset: Path, config_path: Path, f0_method: str) -> None:
    from so_vits_svc_fork.preprocessing.preprocess_hubert_f0 import preprocess_hubert_f0

    preprocess_hubert_f0(dataset, config_path, n_jobs=1, f0_method=f0_method)  # type: ignore[arg-type]


def prepare(
    storage: Storage,
    inputs: list[TrainingInput],
    work: Path,
    preset: Preset,
    total_steps: int,
    f0_method: str,
    report: Callable[[Phase], None],
    check: InputCheck | None = None,
    seed: str = "",
) -> Path:
    """Runs the stages not yet done; returns the config path. `seed` (the job id) fixes
    which pieces are held out."""
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "dataset" / "44k"
    if not _done(work, "pieces"):
        report("download")
        paths = download(storage, inputs, work, check)
        report("prepare")
        split_and_resample(normalize(paths, work), work)
        _mark(work, "pieces")
    config_path = work / "config.json"
    if not _done(work, "config"):
        write_config(dataset, work, preset, total_steps, seed)
        _mark(work, "config")
    if not _done(work, "features"):
        report("features")
        extract_features(dataset, config_path, f0_method)
        _mark(work, "features")
    return config_path
