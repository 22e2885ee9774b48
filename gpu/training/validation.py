"""The fork's `VitsLightning` with a validation loss, a best generator, early stopping and
checkpoints that cost what they must.

The fork validates through Lightning's loop one piece at a time, logs no loss, and saves G and
D with their optimizers (about 1.1 GB for the standard model) after every validation; its
`keep_ckpts` deletes old checkpoints by age, so the best one would not survive. Here Lightning's
validation loop is off and `schedule` calls `validate` on a schedule in steps: the mel L1
distance between the held-out pieces and the model's synthesis of them from their own content
and pitch, scaled like the training's `loss/g/mel` (times `c_mel`), over the whole held-out set,
batched and kept on the device, with the same noise each time so two validations compare like
with like. A new best saves the generator alone to `best/G.pth` (out of reach of any cleaning),
and `best/state.json` keeps the count, so a retried worker resumes both. The full checkpoint a
resume needs is written when `gpu.training.schedule` asks (a time interval) and at the end, whole or
not at all.
"""

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
from so_vits_svc_fork import utils
from so_vits_svc_fork.dataset import TextAudioCollate, TextAudioDataset
from so_vits_svc_fork.modules.mel_processing import mel_spectrogram_torch
from so_vits_svc_fork.train import VitsLightning

from gpu.training.discriminator import divisor_of, narrowed
from gpu.training.early_stop import EarlyStopping

log = logging.getLogger(__name__)
BEST_DIR = "best"
BEST_GENERATOR = "G.pth"
STATE = "state.json"
VAL_BATCH = 8  # held-out pieces per validation batch (at most 60 s are held out)
Batch = tuple[torch.Tensor, ...]


def best_generator(model_dir: Path) -> Path:
    return model_dir / BEST_DIR / BEST_GENERATOR


def stopping_state(model_dir: Path) -> Path:
    return model_dir / BEST_DIR / STATE


def held_out_batches(hparams: Any, batch_size: int = VAL_BATCH) -> list[Batch]:
    """The held-out pieces whole (the fork crops pieces over ~9 s at a random place), sorted
    by length so a batch pads little, collated once for the whole training."""
    dataset = TextAudioDataset(hparams, is_validation=True)
    dataset.max_spec_len = sys.maxsize
    items = sorted((dataset[i] for i in range(len(dataset))), key=lambda d: d["mel_spec"].shape[1])
    collate = TextAudioCollate()
    return [collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


class ValidatedVits(VitsLightning):
    def __init__(self, stopping: EarlyStopping, **hparams: Any) -> None:
        with narrowed(divisor_of(hparams)):  # the tiny preset's discriminator
            super().__init__(reset_optimizer=False, **hparams)
        self.stopping = stopping
        self.skip_validation = False  # set when the job must stop now (cancel, budget)
        self.plateaued = False
        self.validation_seconds = 0.0  # this attempt's bookkeeping time, for the benches
        self.checkpoint_seconds = 0.0
        self.saved_epoch: int | None = None

    @property
    def model_dir(self) -> Path:
        return Path(self.hparams.model_dir)

    @property
    def steps_done(self) -> int:
        """Batches trained, resumed ones included. The fork's `total_batch_idx` is one ahead
        of that (its `on_train_start` readies a batch Lightning then readies again)."""
        return int(self.total_batch_idx) - 1

    def validate(self, batches: list[Batch]) -> float:
        """Records the held-out loss at this step; a new best saves the generator, and a
        plateau stops the training."""
        started = time.monotonic()
        loss = self._held_out_loss(batches)
        step, epoch = self.steps_done, int(self.current_epoch) + 1
        if self.stopping.observe(step, epoch, loss):
            self._save_best(step, epoch, loss)
        self.stopping.save(stopping_state(self.model_dir))
        log.info(
            "validation at step %d: %.4f (best %.4f at step %s)",
            step,
            loss,
            self.stopping.best_loss,
            self.stopping.best_step,
        )
        if self.stopping.should_stop:
            self.plateaued = True
            self.trainer.should_stop = True
        self.validation_seconds += time.monotonic() - started
        return loss

    def _held_out_loss(self, batches: list[Batch]) -> float:
        total, count = 0.0, 0
        devices = [self.device] if self.device.type == "cuda" else []
        was_training = self.net_g.training
        self.net_g.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            for n, batch in enumerate(batches):
                torch.manual_seed(self.hparams.train.seed + n)
                c, f0, _, mel, _, g, lengths, uv = batch
                y_hat = self.net_g.infer(c, f0, uv, g=g)
                y_hat_mel = mel_spectrogram_torch(y_hat.squeeze(1).float(), self.hparams)
                for i, length in enumerate(lengths.tolist()):
                    frames = min(length, y_hat_mel.shape[-1])
                    diff = (y_hat_mel[i, :, :frames] - mel[i, :, :frames].float()).abs()
                    total += float(diff.sum())
                    count += diff.numel()
        self.net_g.train(was_training)
        return total / max(count, 1) * self.hparams.train.c_mel

    def on_validation_end(self) -> None:
        """Lightning's validation loop is off (`gpu.training.schedule` validates); never the fork's
        checkpoint after each validation."""

    def on_train_end(self) -> None:
        """The fork saves a full checkpoint at the end; not twice for one epoch."""
        if self.saved_epoch != int(self.current_epoch):
            self.save_checkpoints(adjust=0)

    def save_checkpoints(self, adjust: int = 1) -> None:
        """G and D with their optimizers, named by completed epochs as the fork's resume
        expects, each written whole or not at all (a worker killed mid-write leaves a `.part`
        the fork never reads); then only the newest `keep_ckpts` pairs stay, by epoch, never
        by file age (G_0/D_0, the pretrained start, count as epoch 0)."""
        if self.tuning or self.trainer.sanity_checking:
            return
        started = time.monotonic()
        epoch = int(self.current_epoch) + adjust
        for name, net, optim in (("G", self.net_g, self.optim_g), ("D", self.net_d, self.optim_d)):
            target = self.model_dir / f"{name}_{epoch}.pth"
            partial = target.with_suffix(".part")
            utils.save_checkpoint(net, optim, self.learning_rate, epoch, partial)
            os.replace(partial, target)
        self.saved_epoch = epoch
        clean_checkpoints(self.model_dir, int(self.hparams.train.get("keep_ckpts", 0)))
        self.checkpoint_seconds += time.monotonic() - started

    def _save_best(self, step: int, epoch: int, loss: float) -> None:
        """The generator as it was evaluated, in the fork's checkpoint format (no optimizer),
        written whole or not at all."""
        started = time.monotonic()
        target = best_generator(self.model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        state = {k: v.detach().cpu() for k, v in self.net_g.state_dict().items()}
        torch.save(
            {
                "model": state,
                "iteration": epoch,
                "learning_rate": self.learning_rate,
                "optimizer": None,
                "step": step,
                "val_loss": loss,
            },
            partial,
        )
        os.replace(partial, target)
        self.checkpoint_seconds += time.monotonic() - started


_NUMBERED = re.compile(r"^[GD]_(\d+)\.pth$")


def clean_checkpoints(model_dir: Path, keep: int) -> list[Path]:
    """Keeps the newest `keep` epochs of G/D (0 keeps all): what a resume reads (the newest
    whole pair; the one before in case the newest turns out torn). The best generator lives
    in `best/`, out of reach."""
    if keep <= 0:
        return []
    epochs = sorted(
        {int(m[1]) for p in model_dir.glob("*.pth") if (m := _NUMBERED.match(p.name))},
        reverse=True,
    )
    removed = []
    for epoch in epochs[keep:]:
        for name in (f"G_{epoch}.pth", f"D_{epoch}.pth"):
            path = model_dir / name
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed
