"""Batches padded to a few lengths (`gpu.training.lengths`, `Speed(length_bucket=…)`) train what
the fork's batches train: the real tiny dataset (features extracted by the real fork) collated
both ways, through the loader a training uses, into the real tiny generator. Every output a
loss reads agrees on each piece's frames, the padding adds nothing to the KL loss, and the
flow gives the same latent. A real training runs at bucketed lengths, and the parts that
recompile for every length compile once per bucket."""

import json
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from gpu.training.lengths import LONGEST, padded
from tests.audio import voice

pytestmark = pytest.mark.slow
BUCKET = 128


@pytest.fixture(scope="module")
def batches(tmp_path_factory, offline_models_env) -> dict:
    """Four real pieces of 2.3-4.1 s, collated as the fork does and as a bucketed loader does
    (its worker processes included: the collate must pickle), saved by a worker-like process."""
    work = tmp_path_factory.mktemp("buckets")
    dataset = work / "dataset" / "44k"
    (dataset / "voice").mkdir(parents=True)
    for i, seconds in enumerate((2.3, 4.1, 3.2, 2.9, 3.7, 2.6)):
        name = f"file{i // 2}_{i * 5:.3f}_{i * 5 + seconds:.3f}.wav"
        audio = voice(seconds, f0=150 + 30 * i, seed=i)[:, 0]
        sf.write(dataset / "voice" / name, audio, 44100)
    out = work / "batches.pt"
    code = f"""
from pathlib import Path
import torch
from so_vits_svc_fork import utils
from so_vits_svc_fork.dataset import TextAudioCollate, TextAudioDataset
from gpu.measures import f0
from gpu.training.prepare import extract_features, write_config
from gpu.training.presets import TINY
from gpu.training.speed import Speed

f0.install()
dataset, work = Path({str(dataset)!r}), Path({str(work)!r})
config_path = write_config(dataset, work, TINY, 10, seed="job")
extract_features(dataset, config_path, "dio")
hparams = utils.get_backup_hparams(config_path, work / "model")
pieces = [TextAudioDataset(hparams)[i] for i in range(4)]
speed = Speed(length_bucket={BUCKET}, workers=1)
loader = speed.datamodule(hparams).train_dataloader()
batches = dict(
    config=config_path.read_text(),
    plain=TextAudioCollate()(pieces),
    bucketed=loader.collate_fn(pieces),
    from_loader=[batch for batch in loader],
)

from gpu.training.schedule import Schedule
from gpu.training.trainer import fit

benchmark_during = []
def sink(progress):
    benchmark_during.append(torch.backends.cudnn.benchmark)
    return True
speed = Speed(length_bucket={BUCKET}, cudnn_benchmark=True, workers=1)
result = fit(config_path, 3, 0.0, sink, Schedule(validate_every=2, checkpoint_seconds=0), speed)
torch.save(batches | dict(
    trained=result.steps,
    benchmark_during=benchmark_during,
    benchmark_after=torch.backends.cudnn.benchmark,
), {str(out)!r})
"""
    env = offline_models_env | {"CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600)
    return torch.load(out, weights_only=False)


def test_a_bucketed_batch_is_the_forks_batch_padded_to_a_whole_bucket(batches) -> None:
    plain, bucketed = batches["plain"], batches["bucketed"]
    frames, hop = plain[0].shape[-1], json.loads(batches["config"])["data"]["hop_length"]
    assert frames % BUCKET, "the pieces' longest length must not fall on a bucket already"
    width = -(-frames // BUCKET) * BUCKET
    for i in (0, 1, 2, 3, 7):  # content, f0, spec, mel, uv: padded by frames
        assert bucketed[i].shape[-1] == width
        assert torch.equal(bucketed[i][..., :frames], plain[i])
        assert not bucketed[i][..., frames:].any()
    assert bucketed[4].shape[-1] == plain[4].shape[-1] + (width - frames) * hop  # the audio
    assert torch.equal(bucketed[5], plain[5]) and torch.equal(bucketed[6], plain[6])
    for batch in batches["from_loader"]:  # a training's loader, with its worker process
        assert all(batch[i].shape[-1] % BUCKET == 0 for i in (0, 1, 2, 3, 7))


def test_a_bucketed_training_autotunes_while_it_trains_and_not_after(batches) -> None:
    """The real `fit`, 3 steps at bucketed lengths with cuDNN's benchmark mode: Lightning sets
    the mode for the whole process, and what runs after a training (its quality report, at
    every length) must not autotune each new shape."""
    assert batches["trained"] == 3
    assert batches["benchmark_during"] and all(batches["benchmark_during"])
    assert batches["benchmark_after"] is False


def _generator(config: dict) -> torch.nn.Module:
    from so_vits_svc_fork.modules.synthesizers import SynthesizerTrn

    torch.manual_seed(0)
    net_g = SynthesizerTrn(
        config["data"]["filter_length"] // 2 + 1,
        config["train"]["segment_size"] // config["data"]["hop_length"],
        **config["model"],
    ).train()
    for module in net_g.modules():  # dropout draws differ with a tensor's size
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return net_g


def test_padding_to_a_bucket_changes_nothing_a_step_learns(batches) -> None:
    from so_vits_svc_fork.modules.losses import kl_loss

    net_g = _generator(json.loads(batches["config"]))
    runs = {}
    for name in ("plain", "bucketed"):
        c, f0, spec, _mel, _y, g, lengths, uv = batches[name]
        torch.manual_seed(5)  # the F0 normalisation's random scale: one draw a piece either way
        runs[name] = net_g(c, f0, uv, spec, g=g, c_lengths=lengths, spec_lengths=lengths)
    lengths = batches["plain"][6]
    frames = batches["plain"][0].shape[-1]
    (_, _, _, mask, (z, z_p, m_p, logs_p, m_q, logs_q), pred_lf0, norm_lf0, lf0) = runs["bucketed"]
    plain = runs["plain"]
    pairs = {
        "prior mean": (m_p, plain[4][2]),
        "prior log-scale": (logs_p, plain[4][3]),
        "posterior mean": (m_q, plain[4][4]),
        "posterior log-scale": (logs_q, plain[4][5]),
        "predicted F0": (pred_lf0, plain[5]),
        "normalised F0": (norm_lf0, plain[6]),
        "F0": (lf0, plain[7]),
    }
    for what, (got, want) in pairs.items():
        for piece, length in enumerate(lengths.tolist()):
            # The F0 predictor's first convolution reads one frame past a piece: the fork's
            # padding (the unmasked voicing embedding) for every piece but a batch's longest,
            # zeros for the longest. Padded to a bucket, the longest reads padding too.
            seen = length - 1 if what == "predicted F0" and length == frames else length
            a, b = got[piece, ..., :seen], want[piece, ..., :seen]
            assert torch.allclose(a, b, atol=1e-5), what
    assert not pred_lf0[..., frames:].any(), "the F0 predictor's padding is masked"

    def kl(t: int) -> torch.Tensor:
        return kl_loss(z_p[..., :t], logs_q[..., :t], m_p[..., :t], logs_p[..., :t], mask[..., :t])

    assert torch.allclose(kl(z.shape[-1]), kl(frames), rtol=1e-6), "the KL loss ignores padding"
    with torch.no_grad():
        flowed = net_g.flow(z[..., :frames], mask[..., :frames], g=net_g.emb_g(g).transpose(1, 2))
    assert torch.allclose(flowed, z_p[..., :frames], atol=1e-5), "the flow ignores padding"


def test_the_parts_that_recompile_per_length_compile_once_per_bucket(batches) -> None:
    from so_vits_svc_fork.f0 import f0_to_coarse
    from so_vits_svc_fork.modules.commons import sequence_mask
    from torch._dynamo.utils import counters

    from gpu.training.compiled import compile_for_training

    config = json.loads(batches["config"])
    eager, compiled = _generator(config), _generator(config)
    model = type("Vits", (), {"net_g": compiled, "net_d": None})()
    with pytest.raises(ValueError, match="length_bucket"):
        compile_for_training(model, ("prior", "f0"))
    with pytest.raises(ValueError, match="lengths to compile"):
        compile_for_training(model, ("prior",), bucket=LONGEST // 20)
    fixed = type("Vits", (), {"net_g": _generator(config), "net_d": None})()
    compile_for_training(fixed, ("decoder",), bucket=LONGEST // 20)  # its shapes never vary
    compile_for_training(model, ("prior", "f0"), bucket=BUCKET)

    def prior_and_f0(net_g: torch.nn.Module, batch: tuple) -> tuple:
        """The two parts' calls in the fork's `SynthesizerTrn.forward`."""
        c, f0, _spec, _mel, _y, _g, lengths, uv = batch
        x_mask = sequence_mask(lengths, c.shape[-1]).unsqueeze(1).float()
        x = net_g.pre(c) * x_mask + net_g.emb_uv(uv.long()).transpose(1, 2)
        torch.manual_seed(9)  # the prior's sample
        _, m_p, logs_p, _ = net_g.enc_p(x, x_mask, f0=f0_to_coarse(f0))
        pred = net_g.f0_decoder(x, f0.unsqueeze(1) / 500, x_mask)
        return m_p, logs_p, pred

    plain, hop = batches["plain"], config["data"]["hop_length"]
    frames = plain[0].shape[-1] - BUCKET  # the next bucket down
    cut = [t[..., :frames] for t in plain]
    cut[4], cut[5], cut[6] = plain[4][..., : frames * hop], plain[5], plain[6].clamp(max=frames)
    graphs = []
    with torch._inductor.config.patch(fallback_random=True):
        for batch in (batches["bucketed"], padded(tuple(cut), BUCKET, hop), batches["bucketed"]):
            counters.clear()
            got, want = prior_and_f0(compiled, batch), prior_and_f0(eager, batch)
            graphs.append(counters["stats"].get("unique_graphs", 0))
            assert not counters["graph_break"]
            for a, b in zip(got, want, strict=True):
                assert torch.allclose(a, b, atol=1e-5)
    assert graphs == [2, 2, 0], f"graphs compiled per batch: {graphs}"
