"""The weights training and conversion load, prepared once into a cache directory.

Production (the Modal image build): the real ContentVec is fetched into the Hugging Face
cache, the pretrained G_0/D_0 into `<cache>/pretrained` and RMVPE's `rmvpe.pt` into
`<cache>/rmvpe`. Offline (tests, CI, a local stack without network): a tiny randomly
initialised ContentVec is written into the same Hugging Face cache layout, so the fork's own
`get_hubert_model` loads it through exactly the code path production uses, and a tiny
randomly initialised RMVPE of the real architecture goes to `<cache>/rmvpe` (it runs the
same tracking code; its pitch is meaningless, so offline jobs should keep FCPE, whose real
weights ship in its wheel). The separator's Demucs weights: gpu/separation/weights.py;
Seed-VC's (instant voice): gpu/instant/weights.py.
"""

import json
import logging
import os
from pathlib import Path

from gpu.instant import weights as instant_weights
from gpu.separation import weights as separator_weights

log = logging.getLogger(__name__)

CONTENTVEC_REPO = "lengyue233/content-vec-best"
TINY_REVISION = "0000000000000000000000000000000000000000"
TINY_HIDDEN = 128  # the tiny preset's ssl_dim must equal this
PRETRAINED_DIRNAME = "pretrained"
RMVPE_REPO, RMVPE_FILE = "lj1995/VoiceConversionWebUI", "rmvpe.pt"


def hf_home(cache_dir: Path) -> Path:
    return cache_dir / "huggingface"


def use_cache(cache_dir: Path, offline: bool) -> None:
    """Points the Hugging Face hub at the cache; call before importing the fork."""
    os.environ["HF_HOME"] = str(hf_home(cache_dir))
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"


def tiny_contentvec_dir(cache_dir: Path) -> Path:
    repo = hf_home(cache_dir) / "hub" / f"models--{CONTENTVEC_REPO.replace('/', '--')}"
    return repo / "snapshots" / TINY_REVISION


def write_tiny_contentvec(cache_dir: Path) -> Path:
    """A randomly initialised HubertModelWithFinalProj in the hub cache layout (offline)."""
    import torch
    from so_vits_svc_fork.utils import HubertModelWithFinalProj
    from transformers import HubertConfig

    snapshot = tiny_contentvec_dir(cache_dir)
    if (snapshot / "config.json").exists():
        return snapshot
    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        conv_dim=(32,) * 7,
        classifier_proj_size=TINY_HIDDEN,
    )
    model = HubertModelWithFinalProj(config)
    snapshot.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(snapshot)
    refs = snapshot.parents[1] / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(TINY_REVISION)
    log.info("wrote a tiny ContentVec to %s", snapshot)
    return snapshot


def fetch_real_weights(cache_dir: Path) -> None:
    """Network required: the real ContentVec and the 4.0v1 template's pretrained G_0/D_0."""
    from so_vits_svc_fork.preprocessing.config_templates import __file__ as templates
    from so_vits_svc_fork.utils import ensure_pretrained_model, get_hubert_model

    get_hubert_model("cpu")  # downloads into HF_HOME
    template = json.loads((Path(templates).parent / "so-vits-svc-4.0v1.json").read_text())
    target = cache_dir / PRETRAINED_DIRNAME
    target.mkdir(parents=True, exist_ok=True)
    ensure_pretrained_model(target, template["model"]["pretrained"])
    missing = [n for n in ("G_0.pth", "D_0.pth") if not (target / n).exists()]
    if missing:
        raise RuntimeError(f"could not fetch pretrained {missing}")


def fetch_rmvpe(cache_dir: Path) -> Path:
    """Network required: the published RMVPE weights, loaded once to check they fit."""
    from huggingface_hub import hf_hub_download

    from gpu.measures import f0, rmvpe

    target = cache_dir / f0.RMVPE_DIRNAME
    target.mkdir(parents=True, exist_ok=True)
    (target / rmvpe.SIZES_NAME).unlink(missing_ok=True)  # no tiny network left behind
    hf_hub_download(RMVPE_REPO, RMVPE_FILE, local_dir=target)  # lands as <target>/rmvpe.pt
    rmvpe.load(target, "cpu")
    return target / rmvpe.WEIGHTS_NAME


def write_tiny_rmvpe(cache_dir: Path) -> Path:
    from gpu.measures import f0, rmvpe

    target = cache_dir / f0.RMVPE_DIRNAME
    if (target / rmvpe.WEIGHTS_NAME).exists():
        return target / rmvpe.WEIGHTS_NAME
    return rmvpe.write_tiny(target)


def prepare(cache_dir: Path, offline: bool) -> None:
    use_cache(cache_dir, offline)
    if offline:
        write_tiny_contentvec(cache_dir)
        write_tiny_rmvpe(cache_dir)
        separator_weights.write_tiny(cache_dir)
        instant_weights.write_tiny(cache_dir)
    else:
        fetch_real_weights(cache_dir)
        fetch_rmvpe(cache_dir)
        separator_weights.fetch(cache_dir)
        instant_weights.fetch(cache_dir)
        from gpu.text.weights import fetch_kokoro

        fetch_kokoro(cache_dir)  # the text engine's model files (gpu/text/)
