"""Training presets: overrides applied to the fork's `so-vits-svc-4.0v1` config template.

`standard` fine-tunes the full model from the pretrained G_0/D_0 until early stopping says
its held-out loss stopped improving (`gpu.training.schedule`), at most the preset's cap; `tiny` is a
shrunken generator and discriminator trained for a few steps (tests, offline local stack).
"""

import math
from dataclasses import dataclass
from typing import Any

from gpu.weights import TINY_HIDDEN
from schemas.jobs import PRESET_CAPS

TEMPLATE = "so-vits-svc-4.0v1"


@dataclass(frozen=True)
class Preset:
    name: str
    needs_pretrained: bool
    batch_size: int
    overrides: dict[str, dict[str, Any]]

    @property
    def max_steps(self) -> int:
        return PRESET_CAPS[self.name][0]

    @property
    def max_epochs(self) -> int:
        return PRESET_CAPS[self.name][1]

    def total_steps(self, dataset_seconds: float, max_steps: int | None) -> int:
        """Never past the preset's cap, whatever a (stored) job asks for: the cap bounds the
        GPU time one training can take."""
        if max_steps:
            return min(max_steps, self.max_steps)
        if self.name == "tiny":
            return 6
        # No floor: with validation every few dozen seconds, early stopping decides the
        # length from the data; the cap bounds what a voice that keeps improving may take.
        return self.max_steps


STANDARD = Preset(
    name="standard",
    needs_pretrained=True,
    batch_size=16,
    overrides={"train": {"keep_ckpts": 2, "log_interval": 200}},
)

TINY = Preset(
    name="tiny",
    needs_pretrained=False,
    batch_size=2,
    overrides={
        "train": {"keep_ckpts": 2, "log_interval": 10**9, "num_workers": 1, "segment_size": 5120,
                  "discriminator_divisor": 16},  # gpu/training/discriminator.py
        "model": {
            "inter_channels": 16, "hidden_channels": 16, "filter_channels": 32, "n_heads": 2,
            "n_layers": 1, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
            "upsample_initial_channel": 32, "gin_channels": 16, "ssl_dim": TINY_HIDDEN,
            "n_layers_q": 1, "n_speakers": 1,
        },
    },
)  # fmt: skip

PRESETS = {p.name: p for p in (STANDARD, TINY)}


def apply(config: dict[str, Any], preset: Preset, steps_per_epoch: int, total_steps: int) -> None:
    """Edits the generated config in place: preset, batch size, epochs for the steps.
    `eval_interval` (one epoch) is read only by the fork's own CLI (bench/train.py);
    the pipeline validates on `gpu.training.schedule`'s schedule."""
    for section, values in preset.overrides.items():
        config[section].update(values)
    train = config["train"]
    train["batch_size"] = preset.batch_size
    train["eval_interval"] = steps_per_epoch
    train["epochs"] = min(math.ceil(total_steps / steps_per_epoch), preset.max_epochs)
    config["model"].pop("pretrained", None)  # we place G_0/D_0 ourselves; never download
