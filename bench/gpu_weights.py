"""Random weights at the real architecture sizes (or tiny ones) for `bench/gpu.py`, written
where the pipeline loads them from (the model cache's layouts, gpu/weights.py), so each stage
runs through its own loading code. Speed and memory depend on the sizes, not on the values:
the figures hold for the published weights; the audio out is noise.
"""

import json
from fractions import Fraction
from pathlib import Path

from gpu.weights import TINY_REVISION, tiny_contentvec_dir, write_tiny_contentvec


def write_contentvec(cache: Path, small: bool) -> None:
    """ContentVec: HuBERT base (768 hidden, 12 layers), ContentVec's 256-wide final proj."""
    if small:
        write_tiny_contentvec(cache)
        return
    import torch
    from so_vits_svc_fork.utils import HubertModelWithFinalProj
    from transformers import HubertConfig

    snapshot = tiny_contentvec_dir(cache)
    torch.manual_seed(0)
    HubertModelWithFinalProj(HubertConfig(classifier_proj_size=256)).save_pretrained(snapshot)
    refs = snapshot.parents[1] / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(TINY_REVISION)


def write_rmvpe(cache: Path, small: bool) -> None:
    import torch

    from gpu.measures import f0, rmvpe

    sizes = rmvpe.TINY_SIZES if small else rmvpe.REAL_SIZES
    target = cache / f0.RMVPE_DIRNAME
    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(rmvpe.E2E(**sizes).state_dict(), target / rmvpe.WEIGHTS_NAME)
    (target / rmvpe.SIZES_NAME).write_text(json.dumps(sizes))


def write_htdemucs(cache: Path, small: bool) -> None:
    """`htdemucs` as published, as far as the package tells: 48 channels, depth 4, nfft 4096,
    a 5-layer cross-domain transformer with 512 bottom channels, at 44.1 kHz with its 7.8 s
    segment: 42 M parameters."""
    import torch
    from demucs.htdemucs import HTDemucs

    from gpu.separation import weights as separator_weights
    from gpu.separation.separate import MODEL_NAME, demucs_repo

    if small:
        separator_weights.write_tiny(cache)
        return
    repo = demucs_repo(cache)
    repo.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = HTDemucs(
        separator_weights.SOURCES,
        samplerate=44100,
        segment=Fraction(39, 5),
        dconv_mode=3,
        bottom_channels=512,
    )  # as the grid that trained the published one (demucs/grids/mmi.py, "extra44"): 42 M
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": model.state_dict()}
    torch.save(package, repo / "0000real.th")
    (repo / f"{MODEL_NAME}.yaml").write_text("models: ['0000real']\n")


def write_all(cache: Path, small: bool) -> None:
    write_contentvec(cache, small)
    write_rmvpe(cache, small)
    write_htdemucs(cache, small)
