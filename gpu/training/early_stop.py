"""When a training has stopped improving: the best validation loss so far, at which step, and
how many steps since. Kept in the job's work dir so a retried worker goes on counting from the
same best instead of starting over (its best generator lies beside it).

Patience is counted in steps, not validations, so it means the same training time whatever
the validation schedule (`gpu.training.schedule`)."""

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class EarlyStopping:
    patience: int  # steps without improvement before stopping; 0 never stops
    min_delta: float = 0.0  # an improvement must lower the best loss by more than this
    best_loss: float | None = None
    best_step: int | None = None
    best_epoch: int | None = None
    since_best: int = 0  # validations since the best, for the logs
    evaluations: list[list[float]] = field(default_factory=list)  # [step, loss]

    def observe(self, step: int, epoch: int, loss: float) -> bool:
        """Records one evaluation; True when it is the new best (a loss that is not a number
        never is)."""
        self.evaluations.append([step, loss])
        improved = math.isfinite(loss) and (
            self.best_loss is None or loss < self.best_loss - self.min_delta
        )
        if improved:
            self.best_loss, self.best_step, self.best_epoch = loss, step, epoch
            self.since_best = 0
        else:
            self.since_best += 1
        return improved

    @property
    def steps_since_best(self) -> int:
        if self.best_step is None or not self.evaluations:
            return 0
        return int(self.evaluations[-1][0]) - self.best_step

    @property
    def should_stop(self) -> bool:
        return (
            self.patience > 0
            and self.best_loss is not None
            and self.steps_since_best >= self.patience
        )

    def save(self, path: Path) -> None:
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path, patience: int, min_delta: float) -> "EarlyStopping":
        """The state an earlier attempt left, under today's settings; a fresh one if none."""
        if not path.exists():
            return cls(patience, min_delta)
        state = json.loads(path.read_text()) | {"patience": patience, "min_delta": min_delta}
        return cls(**state)
