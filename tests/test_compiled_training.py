"""The compiled training step (`gpu.training.compiled`, `Speed(compile=parts)`) computes what
the eager one does: the tiny preset's decoder and discriminator, compiled by torch 2.8's
inductor on this CPU, give the eager outputs and gradients, in one graph each (no graph
break, so nothing of the step falls back to Python between kernels), and only while
training: in eval mode, where validation runs pieces of every length, nothing compiles. The
posterior encoder and the flow take any length with one compile. A second process finds its
compiled kernels in the cache a first one left. Whether any of it is faster is
`bench/gpu.py --only levers`' question, on a GPU. CUDA graphs cannot run here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import so_vits_svc_fork
import torch
from so_vits_svc_fork.modules.descriminators import MultiPeriodDiscriminator
from so_vits_svc_fork.modules.synthesizers import SynthesizerTrn

from gpu.training.compiled import compile_for_training
from gpu.training.discriminator import narrowed
from gpu.training.presets import TEMPLATE, TINY

TEMPLATES = Path(so_vits_svc_fork.__file__).parent / "preprocessing" / "config_templates"


class Pair(torch.nn.Module):
    """The two networks as the fork's Lightning module holds them."""

    def __init__(self) -> None:
        super().__init__()
        config = json.loads((TEMPLATES / f"{TEMPLATE}.json").read_text())
        config["model"].update(TINY.overrides["model"])
        self.frames = TINY.overrides["train"]["segment_size"] // config["data"]["hop_length"]
        self.net_g = SynthesizerTrn(
            config["data"]["filter_length"] // 2 + 1, self.frames, **config["model"]
        )
        with narrowed(TINY.overrides["train"]["discriminator_divisor"]):
            self.net_d = MultiPeriodDiscriminator(False)


def _twins(seed: int) -> tuple[Pair, Pair]:
    """Two pairs with the same weights, training: one to stay eager, one to compile."""
    torch.manual_seed(seed)
    eager, twin = Pair().train(), Pair().train()
    twin.load_state_dict(eager.state_dict())
    return eager, twin


def _step(pair: Pair, z: torch.Tensor, f0: torch.Tensor, g: torch.Tensor) -> tuple:
    """A decoder pass and both discriminator passes, as a training step makes them."""
    torch.manual_seed(7)  # the NSF source's noise
    audio = pair.net_g.dec(z, g=g, f0=f0)
    real, fake, _, fake_maps = pair.net_d(torch.tanh(audio.detach() * 3), audio)
    _, detached, _, _ = pair.net_d(audio.detach(), audio.detach())
    loss = sum(f.mean() for f in fake) + sum(m.abs().mean() for ms in fake_maps for m in ms)
    loss.backward()
    grads = [p.grad.clone() for p in pair.parameters() if p.grad is not None]
    pair.zero_grad()
    return audio.detach(), [r.detach() for r in real + detached], grads


@pytest.mark.slow
def test_the_compiled_decoder_and_discriminator_train_as_the_eager_ones() -> None:
    from torch._dynamo.utils import counters

    eager, compiled = _twins(0)
    keys = list(compiled.state_dict())
    compile_for_training(compiled)
    assert list(compiled.state_dict()) == keys, "checkpoints keep their keys"

    z = torch.randn(2, 16, eager.frames)
    f0 = torch.rand(2, eager.frames) * 300 + 100
    g = torch.randn(2, 16, 1)
    counters.clear()
    with torch._inductor.config.patch(fallback_random=True):  # the same noise as eager
        for _ in range(2):  # the second step runs the compiled code without compiling again
            want, got = _step(eager, z, f0, g), _step(compiled, z, f0, g)
    assert counters["stats"]["unique_graphs"] == 3  # decoder; discriminator with, without grad
    assert not counters["graph_break"]
    assert torch.allclose(got[0], want[0], atol=1e-5)
    for a, b in zip(got[1], want[1], strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    assert len(got[2]) == len(want[2]) > 50
    for a, b in zip(got[2], want[2], strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)

    compiled.eval()
    with torch.no_grad():
        longer = compiled.net_g.dec(torch.randn(1, 16, 37), g=g[:1], f0=f0[:1, :1].repeat(1, 37))
    assert longer.shape[-1] == 37 * 512
    assert counters["stats"]["unique_graphs"] == 3, "validation's lengths run eager"


def _posterior_and_flow(pair: Pair, spec: torch.Tensor, lengths: torch.Tensor) -> tuple:
    torch.manual_seed(11)  # the posterior's sample
    g = torch.zeros(spec.shape[0], 16, 1)
    z, _mean, logs, mask = pair.net_g.enc_q(spec, lengths, g=g)
    z_p = pair.net_g.flow(z, mask, g=g)
    (z_p.square().mean() + logs.mean()).backward()
    grads = [p.grad.clone() for p in pair.net_g.parameters() if p.grad is not None]
    pair.zero_grad()
    return z_p.detach(), grads


@pytest.mark.slow
def test_the_compiled_encoder_and_flow_take_any_length_with_one_compile() -> None:
    from torch._dynamo.utils import counters

    from gpu.training.compiled import FIXED_SHAPES

    eager, compiled = _twins(1)
    compile_for_training(compiled, ("posterior", "flow"))
    assert "posterior" not in FIXED_SHAPES
    graphs = []
    with torch._inductor.config.patch(fallback_random=True):
        for frames in (57, 83, 120):  # a piece's length varies from batch to batch
            spec = torch.randn(2, 1025, frames)
            lengths = torch.tensor([frames, frames - 9])
            counters.clear()
            want, got = (
                _posterior_and_flow(eager, spec, lengths),
                _posterior_and_flow(compiled, spec, lengths),
            )
            graphs.append(counters["stats"].get("unique_graphs", 0))
            assert torch.allclose(got[0], want[0], atol=1e-5)
            assert len(got[1]) == len(want[1]) > 20
            for a, b in zip(got[1], want[1], strict=True):
                assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)
    assert graphs[0] > 0 and graphs[1:] == [0, 0], f"compiled again for a new length: {graphs}"


def test_parts_are_named() -> None:
    from gpu.training.speed import Speed

    with pytest.raises(TypeError):
        Speed(compile=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="generator"):
        compile_for_training(Pair(), ("generator",))


COMPILE_ONCE = """
import json, sys, time, torch
from pathlib import Path
from torch._dynamo.utils import counters
from gpu.training.compiled import compile_for_training, keep_compiled_in
from tests.test_compiled_training import Pair

keep_compiled_in(Path(sys.argv[1]))
pair = Pair().train()
compile_for_training(pair, ("f0",), bucket=128)
x, f0, mask = torch.randn(2, 16, 128), torch.randn(2, 1, 128), torch.ones(2, 1, 128)
started = time.perf_counter()
pair.net_g.f0_decoder(x, f0, mask).square().mean().backward()
print(json.dumps({"seconds": time.perf_counter() - started, **counters["inductor"],
                  **counters["aot_autograd"]}))
"""


@pytest.mark.slow
def test_a_second_training_process_reads_its_compiled_kernels_from_the_cache(tmp_path) -> None:
    """As two training containers on one work volume: the first compiles the F0 decoder's
    forward and backward and writes them to the cache; the second finds both there."""

    root = Path(__file__).resolve().parent.parent
    own = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in own}
    (tmp_path / "tmp").mkdir()  # torch's default cache dir is under it: private, and empty
    env |= {"PYTHONPATH": str(root), "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp_path / "tmp")}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", COMPILE_ONCE, str(tmp_path / "compile-cache")],
            env=env, capture_output=True, text=True, timeout=600, check=True, cwd=tmp_path,
        )  # fmt: skip
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["fxgraph_cache_miss"] == 2 and first["autograd_cache_saved"] == 1
    assert second["fxgraph_cache_hit"] == 2 and second["autograd_cache_hit"] == 1
    assert "fxgraph_cache_miss" not in second
    cache = tmp_path / "compile-cache"
    assert [p.name for p in cache.iterdir()] == [f"torch-{torch.__version__}"]
    assert any((cache / f"torch-{torch.__version__}" / "fxgraph").rglob("*"))
    assert not any((tmp_path / "tmp").rglob("*fxgraph*")), "nothing went to the default"


def test_the_cache_of_another_torch_version_goes(tmp_path, monkeypatch) -> None:
    from gpu.training.compiled import keep_compiled_in

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "set by an operator")
    keep_compiled_in(tmp_path)
    assert not any(tmp_path.iterdir()), "an operator's cache dir is theirs"

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    old = tmp_path / "torch-2.7.1" / "fxgraph" / "kernel"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"compiled by 2.7.1")
    keep_compiled_in(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"torch-{torch.__version__}"]
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / f"torch-{torch.__version__}")
