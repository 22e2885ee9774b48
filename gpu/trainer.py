"""A Lightning Trainer built around the fork's own `VCDataModule` and `VitsLightning`, with a
callback for progress, heartbeats and cancellation (the fork's `train()` builds a Trainer
with fixed callbacks and no way in). Checkpoints live in the job's work dir; the fork's model
resumes from the newest one when a retried worker starts again.
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

log = logging.getLogger(__name__)
ProgressSink = Callable[[dict[str, Any]], bool]  # returns False when the job must stop


@dataclass
class TrainResult:
    steps: int
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from_step: int = 0


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
        self._kept: list[list[float | None]] = []
        self._stride = 1

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *_: Any) -> None:
        step = int(module.total_batch_idx)
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
        progress = {
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
            self.canceled = True
            trainer.should_stop = True
        if step >= self.total_steps:
            trainer.should_stop = True

    def on_validation_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        self._keep_alive(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        self._keep_alive(trainer)

    def _keep_alive(self, trainer: pl.Trainer) -> None:
        """Heartbeats between training batches too (validation, a new epoch's loaders), so a
        cancel or a spent GPU budget is charged and seen there as well; the trainer then stops
        as it does after a batch."""
        now = time.monotonic()
        if self.last_progress is None or now - self.last_report < self.every:
            return
        self.last_report = now
        if not self.sink(self.last_progress):
            self.canceled = True
            trainer.should_stop = True

    def _remember(self, step: int, *losses: float | None) -> None:
        """A loss curve for the page's chart that survives a reload: points at least `stride`
        steps apart, the stride doubling (and every other point dropped) whenever
        HISTORY_POINTS fill, plus the latest point, so its size stays bounded and its spacing
        even however long the run."""
        point = [step, *(None if v is None else round(v, 4) for v in losses)]
        if not self._kept or step - self._kept[-1][0] >= self._stride:
            self._kept.append(point)
            if len(self._kept) >= HISTORY_POINTS:
                self._kept, self._stride = self._kept[::2], self._stride * 2
        tail = [] if self._kept[-1] is point else [point]
        self.history = self._kept + tail


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
    config_path: Path, total_steps: int, every_seconds: float, sink: ProgressSink
) -> TrainResult:
    from so_vits_svc_fork import utils
    from so_vits_svc_fork.train import VCDataModule, VitsLightning

    model_dir = config_path.parent / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    for path in drop_torn_checkpoints(model_dir):
        log.warning("dropped a torn checkpoint: %s", path.name)
    hparams = utils.get_backup_hparams(config_path, model_dir)
    datamodule = VCDataModule(hparams)
    model = VitsLightning(reset_optimizer=False, **hparams)
    resumed = model._temp_epoch * hparams.train.eval_interval
    progress = ProgressCallback(total_steps, every_seconds, sink)
    trainer = pl.Trainer(
        default_root_dir=model_dir,
        logger=pl.loggers.TensorBoardLogger(model_dir, "lightning_logs", 0),
        val_check_interval=hparams.train.eval_interval,
        max_epochs=hparams.train.epochs,
        check_val_every_n_epoch=None,
        precision=32,
        callbacks=[progress],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        benchmark=torch.cuda.is_available(),
    )
    trainer.fit(model, datamodule=datamodule)
    if progress.canceled:
        raise JobCanceled
    return TrainResult(
        steps=progress.last_step,
        epochs=int(trainer.current_epoch),
        metrics={
            k: v
            for k in ("loss/g/total", "loss/d/total", "loss/g/mel")
            if (v := _metric(trainer, k)) is not None
        },
        resumed_from_step=resumed,
    )


def export_generator(model_dir: Path, target: Path) -> int:
    """The newest generator's weights alone (no optimizer state), as `Svc` reads them."""
    from so_vits_svc_fork import utils

    latest = utils.latest_checkpoint_path(model_dir, "G_*.pth")
    if latest is None:
        raise JobFailure("INTERNAL", "Training finished without a checkpoint.")
    checkpoint = torch.load(latest, map_location="cpu", weights_only=True)
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
