"""When a training pays for bookkeeping, so the GPU spends its time learning the voice.

Measured on an H200 (issue 25), validating and saving G+D with optimizers after every epoch of
a 10-minute dataset (5 steps) cost more than the training itself. Here:

- validation every `validate_every` steps (and once at the end), on the held-out set batched
  once and kept on the device (`gpu.training.validation.held_out_batches`); a new best saves the
  generator alone;
- a full resume checkpoint (G, D, optimizers) at the first epoch end `checkpoint_seconds` after
  the last one (the fork's resume counts whole epochs, so never mid-epoch; 0: every epoch) and
  at the end, which a budget stop keeps for the retried worker;
- early stopping after `patience` steps without a better held-out loss (`gpu.training.early_stop`).
"""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl

if TYPE_CHECKING:  # the fork is imported only once the model cache is set (gpu.weights)
    from gpu.training.validation import Batch, ValidatedVits


@dataclass(frozen=True)
class Schedule:
    validate_every: int = 100  # steps
    checkpoint_seconds: float = 300.0
    patience: int = 0  # steps without improvement before stopping; 0 never stops early
    min_delta: float = 0.0

    @classmethod
    def from_settings(cls, settings: Any) -> "Schedule":
        return cls(
            validate_every=settings.validate_every_steps,
            checkpoint_seconds=settings.checkpoint_seconds,
            patience=settings.early_stop_patience_steps,
            min_delta=settings.early_stop_min_delta,
        )


class Bookkeeping(pl.Callback):
    """Runs before the progress callback, so a step's report carries its validation."""

    def __init__(self, schedule: Schedule, batches: "list[Batch]") -> None:
        self.schedule = schedule
        self.batches = batches
        self.fit_started = time.monotonic()
        self.first_step_seconds: float | None = None  # from `fit` to the first batch's end
        self.resumed_from_step = 0
        self.last_checkpoint = 0.0

    def on_train_start(self, trainer: pl.Trainer, module: "ValidatedVits") -> None:
        self.batches = [tuple(t.to(module.device) for t in b) for b in self.batches]
        self.last_checkpoint = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, module: "ValidatedVits", *_: Any) -> None:
        if self.first_step_seconds is None:  # (the fork's on_train_start, after this
            # callback's, set the count a resume starts from)
            self.first_step_seconds = time.monotonic() - self.fit_started
            self.resumed_from_step = module.steps_done - 1
        if module.steps_done % max(self.schedule.validate_every, 1) == 0:
            self._validate(module)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: "ValidatedVits") -> None:
        whole = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        due = time.monotonic() - self.last_checkpoint >= self.schedule.checkpoint_seconds
        if whole and due and not trainer.should_stop:  # the end saves anyway
            module.save_checkpoints(adjust=1)
            self.last_checkpoint = time.monotonic()

    def on_train_end(self, trainer: pl.Trainer, module: "ValidatedVits") -> None:
        """The last step is validated too, so the best is chosen among everything trained."""
        evaluations = module.stopping.evaluations
        if not evaluations or int(evaluations[-1][0]) != module.steps_done:
            self._validate(module)

    def _validate(self, module: "ValidatedVits") -> None:
        if module.skip_validation or not self.batches or module.steps_done <= 0:
            return
        module.validate(self.batches)
