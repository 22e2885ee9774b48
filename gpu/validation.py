"""The fork's `VitsLightning` with a validation loss, a best checkpoint and early stopping.

The fork's `validation_step` synthesises each validation piece but logs no loss, and its
`keep_ckpts` deletes old checkpoints by age, so the best one would not survive. Here each
validation (one per epoch, `gpu.presets.apply`) measures the mel L1 distance between the
held-out pieces and the model's synthesis of them from their own content and pitch, scaled
like the training's `loss/g/mel` (times `c_mel`), over the whole held-out set with the same noise
each time so two epochs compare like with like. A new best is copied to `best/G.pth` beside
the fork's checkpoints (out of reach of its cleaning), and `best/state.json` keeps the count,
so a retried worker resumes both.
"""

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from so_vits_svc_fork.modules.mel_processing import mel_spectrogram_torch
from so_vits_svc_fork.train import VitsLightning

from gpu.early_stop import EarlyStopping

log = logging.getLogger(__name__)
BEST_DIR = "best"
BEST_GENERATOR = "G.pth"
STATE = "state.json"


def best_generator(model_dir: Path) -> Path:
    return model_dir / BEST_DIR / BEST_GENERATOR


def stopping_state(model_dir: Path) -> Path:
    return model_dir / BEST_DIR / STATE


class ValidatedVits(VitsLightning):
    def __init__(self, stopping: EarlyStopping, **hparams: Any) -> None:
        super().__init__(reset_optimizer=False, **hparams)
        self.stopping = stopping
        self.skip_validation = False  # set when the job must stop now (cancel, budget)
        self.plateaued = False
        self._val_sum = 0.0
        self._val_count = 0
        self._val_started = 0.0
        self.validation_seconds = 0.0  # this attempt's time in validation, for bench/train.py

    @property
    def model_dir(self) -> Path:
        return Path(self.hparams.model_dir)

    def on_validation_epoch_start(self) -> None:
        self._val_sum, self._val_count = 0.0, 0
        self._val_started = time.monotonic()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self.global_step == 0 or self.skip_validation:
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.hparams.train.seed + batch_idx)
            self.net_g.eval()
            c, f0, _, mel, _, g, _, uv = batch
            y_hat = self.net_g.infer(c, f0, uv, g=g)
            y_hat_mel = mel_spectrogram_torch(y_hat.squeeze(1).float(), self.hparams)
            frames = min(mel.shape[-1], y_hat_mel.shape[-1])
            diff = (y_hat_mel[..., :frames] - mel[..., :frames].float()).abs()
            self._val_sum += float(diff.sum())
            self._val_count += diff.numel()

    def on_validation_end(self) -> None:
        if self._val_count:
            self.validation_seconds += time.monotonic() - self._val_started
        super().on_validation_end()  # the fork's checkpoint of this epoch
        if self._val_count == 0 or self.trainer.sanity_checking:
            return
        loss = self._val_sum / self._val_count * self.hparams.train.c_mel
        step, epoch = int(self.total_batch_idx), int(self.current_epoch) + 1
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

    def _save_best(self, step: int, epoch: int, loss: float) -> None:
        """The generator as it was evaluated, in the fork's checkpoint format (no optimizer),
        written whole or not at all."""
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
