"""A narrower discriminator for the tiny preset, built by the fork's own code.

The fork's `MultiPeriodDiscriminator` has fixed widths (32 to 1024 channels, 46.7 M
parameters) whatever the config says. Beside the tiny preset's 16-channel generator it was
nearly all of a tiny training step on a CPU (1.7 to 2.5 s of a 2.3 s step) and 561 MB a
checkpoint with its optimizer state, so every offline training (the suite, the local stack)
spent its time and disk on a discriminator no test looks at.

The fork builds its discriminators from the names `Conv1d` and `Conv2d` in its
`descriminators` module. While `narrowed(divisor)` is active those names build the same
layers with every width but the single input and output channel divided (groups reduced to
what still divides both sides), so the layer sequence, kernels, strides, norms and forward
pass stay the fork's own. A preset opts in with `train.discriminator_divisor`; the standard
preset does not, and its D_0 loads as before.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CONFIG_KEY = "discriminator_divisor"


def divisor_of(hparams: Any) -> int:
    return int(hparams["train"].get(CONFIG_KEY, 1) or 1)


@contextmanager
def narrowed(divisor: int) -> Iterator[None]:
    """While active, the fork's discriminators are built `divisor` times narrower."""
    if divisor <= 1:
        yield
        return
    from so_vits_svc_fork.modules import descriminators as fork

    originals = {"Conv1d": fork.Conv1d, "Conv2d": fork.Conv2d}

    def narrow(channels: int) -> int:
        return channels if channels == 1 else max(1, channels // divisor)

    def build(original: Any) -> Any:
        def conv(n_in: int, n_out: int, *args: Any, groups: int = 1, **kw: Any) -> Any:
            n_in, n_out = narrow(n_in), narrow(n_out)
            return original(n_in, n_out, *args, groups=math.gcd(groups, n_in, n_out), **kw)

        return conv

    try:
        for name, original in originals.items():
            setattr(fork, name, build(original))
        yield
    finally:
        for name, original in originals.items():
            setattr(fork, name, original)
