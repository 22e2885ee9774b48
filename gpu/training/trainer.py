"""A Lightning Trainer built around the fork's own `VCDataModule` and `VitsLightning` (with a
validation loss, early stopping and checkpoints on a schedule: `gpu.training.validation`,
`gpu.training.schedule`), with a callback for progress, heartbeats and cancellation (the fork's
`train()` builds a Trainer with fixed callbacks and no way in). Checkpoints live in the job's
work dir; the fork's model resumes from the newest one when a retried worker starts again, and
the export takes the best generator.
"""

import logging
import math
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from gpu.errors import JobCanceled, JobFailure
from gpu.training.early_stop import EarlyStopping
from gpu.training.schedule import Bookkeeping, Schedule
from gpu.training.speed import Speed

log = logging.getLogger(__name__)
ProgressSink = Callable[[dict[str, Any]], bool]  # returns False when the job must stop


@dataclass
class TrainResult:
    steps: int
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from_step: int = 0
    stop_reason: str = "step_limit"  # or "plateau"; a budget stop raises JobCanceled
    best_step: int | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    val_history: list[list[float | None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What the model version's metrics and the last progress say about the stop."""
        return {
            "stop_reason": self.stop_reason,
            "best_step": self.best_step,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
        }


HISTORY_POINTS = 120


def _metric(trainer: pl.Trainer, name: str) -> float | None:
    value = trainer.callback_metrics.get(name)
    return float(value) if value is not None else None


class ProgressCallback(pl.Callback):
    def __init__(self, total_steps: int, every_seconds: float, sink: ProgressSink) -> None:
        self.total_steps = total_steps
        self.every = every_seconds
        self.sink = sink
        self.started = time.monotonic()
        self.first_step: int | None = None
        self.last_report = 0.0
        self.last_step = 0
        self.canceled = False
        self.last_progress: dict[str, Any] | None = None
        self.history: list[list[float | None]] = []
        self._curve = Curve()

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *_: Any) -> None:
        step = int(module.steps_done)
        self.last_step = step
        if self.first_step is None:
            self.first_step = step - 1
        loss_g = _metric(trainer, "loss/g/total")
        if loss_g is not None and not math.isfinite(loss_g):
            raise JobFailure(
                "TRAINING_DIVERGED", "Training became unstable (the loss is not a number)."
            )
        now = time.monotonic()
        if step < self.total_steps and now - self.last_report < self.every:
            return
        self.last_report = now
        done = max(step - self.first_step, 1)
        eta = (now - self.started) / done * max(self.total_steps - step, 0)
        loss_d, mel = _metric(trainer, "loss/d/total"), _metric(trainer, "loss/g/mel")
        self._remember(step, loss_g, loss_d, mel)
        progress = self._validation(module) | {
            "phase": "train",
            "step": step,
            "total_steps": self.total_steps,
            "epoch": int(trainer.current_epoch),
            "loss_g": loss_g,
            "loss_d": loss_d,
            "mel_loss": mel,
            "eta_s": round(eta, 1),
            "history": self.history,
        }
        self.last_progress = progress
        if not self.sink(progress):
            self._stop_now(trainer)
        if step >= self.total_steps:
            trainer.should_stop = True  # then the last validation and checkpoint

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        self._keep_alive(trainer)

    def _keep_alive(self, trainer: pl.Trainer) -> None:
        """Heartbeats between training batches too (a new epoch's loaders), so a cancel or a
        spent GPU budget is charged and seen there as well; the trainer then stops as it does
        after a batch."""
        now = time.monotonic()
        if self.last_progress is None or now - self.last_report < self.every:
            return
        self.last_report = now
        if not self.sink(self.last_progress):
            self._stop_now(trainer)

    def _stop_now(self, trainer: pl.Trainer) -> None:
        """Canceled or out of GPU budget: stop without the last validation (it would be
        charged and nothing would use it)."""
        self.canceled = True
        trainer.should_stop = True
        trainer.lightning_module.skip_validation = True

    def _validation(self, module: Any) -> dict[str, Any]:
        stopping: EarlyStopping | None = getattr(module, "stopping", None)
        if stopping is None or not stopping.evaluations:
            return {}
        return {
            "val_loss": _rounded(stopping.evaluations[-1][1]),
            "val_history": self.validation_curve(stopping),
            "best_step": stopping.best_step,
            "best_val_loss": _rounded(stopping.best_loss),
        }

    def _remember(self, step: int, *losses: float | None) -> None:
        self.history = self._curve.add(step, *losses)

    def validation_curve(self, stopping: EarlyStopping) -> list[list[float | None]]:
        """The held-out loss per evaluation, thinned like the training curve."""
        curve = Curve()
        for step, loss in stopping.evaluations:
            curve.add(int(step), loss)
        return curve.points


class Curve:
    """A loss curve for the page's chart that survives a reload: points at least `stride`
    steps apart, the stride doubling (and every other point dropped) whenever HISTORY_POINTS
    fill, plus the latest point, so its size stays bounded and its spacing even however long
    the run."""

    def __init__(self) -> None:
        self._kept: list[list[float | None]] = []
        self._stride = 1
        self.points: list[list[float | None]] = []

    def add(self, step: int, *values: float | None) -> list[list[float | None]]:
        point = [step, *(_rounded(v) for v in values)]
        if not self._kept or step - (self._kept[-1][0] or 0) >= self._stride:
            self._kept.append(point)
            if len(self._kept) >= HISTORY_POINTS:
                self._kept, self._stride = self._kept[::2], self._stride * 2
        tail = [] if self._kept[-1] is point else [point]
        self.points = self._kept + tail
        return self.points


def _rounded(value: float | None) -> float | None:
    """For the job row's JSON, which has no NaN or infinity."""
    return round(value, 4) if value is not None and math.isfinite(value) else None


def _intact(path: Path) -> bool:
    """torch checkpoints are zip files; one torn by a crash mid-write has no central directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def drop_torn_checkpoints(model_dir: Path) -> list[Path]:
    """The fork saves G_n/D_n in place, so a worker killed while saving leaves a torn file
    and its resume fails. Keep only epochs whose G and D are both intact."""
    removed = []
    for g in sorted(model_dir.glob("G_*.pth")):
        d = g.with_name("D" + g.name[1:])
        if g.name == "G_0.pth" or (_intact(g) and d.exists() and _intact(d)):
            continue
        for path in (g, d):
            if path.exists():
                path.unlink()
                removed.append(path)
    for d in model_dir.glob("D_*.pth"):
        if not d.with_name("G" + d.name[1:]).exists():
            d.unlink()
            removed.append(d)
    return removed


def fit(
    config_path: Path,
    total_steps: int,
    every_seconds: float,
    sink: ProgressSink,
    schedule: Schedule | None = None,
    speed: Speed | None = None,
    compile_cache: Path | None = None,
) -> TrainResult:
    """Trains until the step limit, or until `schedule.patience` steps went by without a
    validation better than the best by more than `schedule.min_delta` (0: never stops early).
    Compiled parts (`speed.compile`) keep their kernels in `compile_cache` for the next run."""
    from so_vits_svc_fork import utils

    from gpu.training.validation import ValidatedVits, held_out_batches, stopping_state

    schedule, speed = schedule or Schedule(), speed or Speed()
    speed.apply()
    model_dir = config_path.parent / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    for path in drop_torn_checkpoints(model_dir):
        log.warning("dropped a torn checkpoint: %s", path.name)
    hparams = utils.get_backup_hparams(config_path, model_dir)
    datamodule = speed.datamodule(hparams)
    stopping = EarlyStopping.load(stopping_state(model_dir), schedule.patience, schedule.min_delta)
    model = speed.applied_to(ValidatedVits(stopping, **hparams), compile_cache)
    bookkeeping = Bookkeeping(schedule, held_out_batches(hparams))
    progress = ProgressCallback(total_steps, every_seconds, sink)
    benchmark = torch.backends.cudnn.benchmark
    trainer = pl.Trainer(
        **trainer_options(model_dir, hparams, [bookkeeping, progress], speed.trainer_options())
    )
    try:
        trainer.fit(model, datamodule=datamodule)
    finally:  # Lightning set it for the process: what runs next sees pieces of any length
        torch.backends.cudnn.benchmark = benchmark
    if progress.canceled:
        raise JobCanceled
    plateau = model.plateaued and progress.last_step < total_steps
    return TrainResult(
        steps=progress.last_step,
        epochs=int(trainer.current_epoch),
        metrics={
            k: v
            for k in ("loss/g/total", "loss/d/total", "loss/g/mel")
            if (v := _metric(trainer, k)) is not None
        }
        | {
            "validations": len(stopping.evaluations),
            "validation_seconds": round(model.validation_seconds, 2),
            "checkpoint_seconds": round(model.checkpoint_seconds, 2),
            "first_step_seconds": _rounded(bookkeeping.first_step_seconds),
        },
        resumed_from_step=bookkeeping.resumed_from_step,
        stop_reason="plateau" if plateau else "step_limit",
        best_step=stopping.best_step,
        best_epoch=stopping.best_epoch,
        best_val_loss=_rounded(stopping.best_loss),
        val_history=progress.validation_curve(stopping),
    )


def trainer_options(
    model_dir: Path, hparams: Any, callbacks: list[pl.Callback], speed: dict[str, Any]
) -> dict:
    """Lightning's validation loop is off (`gpu.training.schedule` validates on its own schedule).
    `speed` (`Speed.trainer_options`) sets the precision and cuDNN's benchmark mode: off unless
    lengths are bucketed, since with the fork's lengths it autotuned every new shape (137 GiB
    and 53 s before the first step on an H200; 10.8 GiB and a 0.8 s first step without, at the
    same speed per step)."""
    return dict(
        default_root_dir=model_dir,
        logger=pl.loggers.TensorBoardLogger(model_dir, "lightning_logs", 0),
        max_epochs=hparams.train.epochs,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **speed,
    )


def export_generator(model_dir: Path, target: Path) -> int:
    """The best generator's weights alone (no optimizer state), as `Svc` reads them: the one
    with the lowest held-out loss, or the newest when no validation ran."""
    from so_vits_svc_fork import utils

    from gpu.training.validation import best_generator

    best = best_generator(model_dir)
    chosen = best if best.exists() else utils.latest_checkpoint_path(model_dir, "G_*.pth")
    if chosen is None:
        raise JobFailure("INTERNAL", "Training finished without a checkpoint.")
    checkpoint = torch.load(chosen, map_location="cpu", weights_only=True)
    torch.save(
        {
            "model": checkpoint["model"],
            "iteration": checkpoint["iteration"],
            "learning_rate": checkpoint["learning_rate"],
            "optimizer": None,
        },
        target,
    )
    return target.stat().st_size
