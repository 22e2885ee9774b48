"""`gpu.training.speed.Speed`'s levers refuse what cannot pay, and the fused optimizer is the
fork's AdamW with one kernel: switched where the fork's checkpoint loading cannot undo it,
stepping as the per-tensor kernels do; a run resumed with the lever off is not fused."""

import copy

import pytest
import torch

from gpu.training.speed import Speed


def test_cudnn_benchmark_needs_buckets() -> None:
    with pytest.raises(ValueError, match="length_bucket"):
        Speed(cudnn_benchmark=True)
    assert Speed(length_bucket=128, cudnn_benchmark=True).trainer_options()["benchmark"]
    assert Speed().trainer_options() == {"precision": "32-true", "benchmark": False}


class Module:
    """What Lightning asks of the fork's module: `configure_optimizers`, after the fork built its
    AdamW optimizers (as its `VitsLightning.__init__` does) and loaded a checkpoint's state."""

    def __init__(self, seed: int, checkpoint: dict | None = None) -> None:
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )
        self.optim = torch.optim.AdamW(self.net.parameters(), 2e-4, betas=(0.8, 0.99), eps=1e-9)
        if checkpoint:  # a copy, as each run reads its own from disk
            self.optim.load_state_dict(copy.deepcopy(checkpoint))
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optim, gamma=0.999875)

    def configure_optimizers(self) -> tuple:
        return [self.optim], [self.scheduler]


def _train(module: Module) -> list[torch.Tensor]:
    (optim,), _ = module.configure_optimizers()
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        module.net(x).square().mean().backward()
        optim.step()
        optim.zero_grad()
    return [p.detach() for p in module.net.parameters()]


def test_the_fused_optimizer_survives_a_loaded_checkpoint_and_steps_as_the_forks() -> None:
    trained = Module(0)
    _train(trained)
    saved = trained.optim.state_dict()  # as a resume checkpoint holds it: not fused, stepped
    fused = torch.optim.AdamW(Module(0).net.parameters(), fused=True)
    fused.load_state_dict(saved)
    assert not fused.param_groups[0]["fused"], "loading brings the saved flags back"

    plain = Module(0, saved)
    quick = Speed(fused_optimizer=True).applied_to(Module(0, saved))
    (optim,), _ = quick.configure_optimizers()
    assert all(group["fused"] and not group["foreach"] for group in optim.param_groups)
    for param, state in optim.state.items():  # where the fused kernel wants its step counts
        assert state["step"].dtype == torch.float32 and state["step"].device == param.device
    for a, b in zip(_train(quick), _train(plain), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_run_resumed_with_the_lever_off_is_not_fused() -> None:
    fused = Speed(fused_optimizer=True).applied_to(Module(0))
    _train(fused)
    resumed = Speed().applied_to(Module(0, fused.optim.state_dict()))
    assert resumed.optim.param_groups[0]["fused"], "the checkpoint's flag came back"
    (optim,), _ = resumed.configure_optimizers()
    assert not optim.param_groups[0]["fused"]
