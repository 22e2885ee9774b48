"""The tiny preset's discriminator is the fork's, narrower (gpu/training/discriminator.py): the
same layers, kernels, strides and norms, every inner width divided, and only inside the
context: the standard preset's discriminator, which loads the pretrained D_0, is untouched."""

import torch
from so_vits_svc_fork.modules.descriminators import MultiPeriodDiscriminator

from gpu.training.discriminator import divisor_of, narrowed
from gpu.training.presets import STANDARD, TINY


def _convs(d: MultiPeriodDiscriminator) -> list[torch.nn.Module]:
    return [m for m in d.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d)]


def test_the_narrowed_discriminator_is_the_forks_layers_at_a_sixteenth_of_the_width() -> None:
    full = MultiPeriodDiscriminator(False)
    with narrowed(divisor_of({"train": TINY.overrides["train"]})):
        tiny = MultiPeriodDiscriminator(False)
    again = MultiPeriodDiscriminator(False)
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in full.parameters())

    pairs = list(zip(_convs(full), _convs(tiny), strict=True))
    assert len(pairs) == 7 + 5 * 6  # the scale discriminator (6 + post), five periods (5 + post)
    for big, small in pairs:
        assert type(big) is type(small)
        assert (big.kernel_size, big.stride, big.padding) == (
            small.kernel_size,
            small.stride,
            small.padding,
        )
        assert hasattr(small, "weight_g") and hasattr(small, "weight_v")  # the fork's norm
        assert small.in_channels == (1 if big.in_channels == 1 else max(1, big.in_channels // 16))
    full_params = sum(p.numel() for p in full.parameters())
    tiny_params = sum(p.numel() for p in tiny.parameters())
    assert full_params > 40e6 and tiny_params < full_params / 200

    y, y_hat = torch.randn(2, 1, 5120), torch.randn(2, 1, 5120)
    real, fake, real_maps, fake_maps = tiny(y, y_hat)  # the fork's forward
    full_real, full_fake, full_maps, _ = full(y, y_hat)
    assert [r.shape for r in real] == [r.shape for r in full_real]  # one score map per scale
    assert [f.shape for f in fake] == [f.shape for f in full_fake]  # and per period
    assert [[m.shape[2:] for m in ms] for ms in real_maps] == [
        [m.shape[2:] for m in ms] for ms in full_maps
    ], "every layer's feature map as long as the fork's (only the channels are fewer)"
    assert not any(torch.equal(a, b) for a, b in zip(real, fake, strict=True))
    assert all(len(r) == len(f) for r, f in zip(real_maps, fake_maps, strict=True))


def test_only_the_tiny_preset_asks_for_it() -> None:
    assert divisor_of({"train": TINY.overrides["train"]}) == 16
    assert divisor_of({"train": STANDARD.overrides["train"]}) == 1
