"""The separation model's weights in the cache's local Demucs repository.

Production (the image build): the published `htdemucs` checkpoint, named with its checksum
so Demucs verifies it on every load, and the bag file naming it. Offline: a tiny randomly
initialised `HTDemucs` of the real class at the real rate and segment, under a signature of
its own, named by the same bag file, so `gpu.separation.separate.load_model` takes the same path.
"""

import shutil
from fractions import Fraction
from pathlib import Path

from gpu.separation.separate import MODEL_NAME, demucs_repo

TINY_SIGNATURE = "0000tiny"
SOURCES = ["drums", "bass", "other", "vocals"]
# Small enough to separate a minute in seconds on a CPU; the real class, rate and segment.
TINY_KWARGS = {
    "channels": 4,
    "depth": 3,
    "nfft": 1024,
    "t_layers": 1,
    "t_heads": 1,
    "t_hidden_scale": 1.0,
    "dconv_comp": 2,
    "dconv_depth": 1,
    "samplerate": 44100,
    "segment": Fraction(39, 5),
}


def _bag(repo: Path, signature: str) -> None:
    (repo / f"{MODEL_NAME}.yaml").write_text(f"models: ['{signature}']\n")


def write_tiny(cache_dir: Path) -> Path:
    """The tiny model, unless the repository already holds a model (real or tiny)."""
    import torch
    from demucs.htdemucs import HTDemucs

    repo = demucs_repo(cache_dir)
    if (repo / f"{MODEL_NAME}.yaml").exists():
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = HTDemucs(SOURCES, **TINY_KWARGS)
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": model.state_dict()}
    torch.save(package, repo / f"{TINY_SIGNATURE}.th")
    _bag(repo, TINY_SIGNATURE)
    return repo


def fetch(cache_dir: Path) -> Path:
    """Network required: the published checkpoint Demucs itself names, loaded once."""
    import yaml
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files
    from torch.hub import download_url_to_file

    from gpu.separation.separate import load_model

    repo = demucs_repo(cache_dir)
    shutil.rmtree(repo, ignore_errors=True)  # no tiny model left behind
    repo.mkdir(parents=True)
    shutil.copy(REMOTE_ROOT / f"{MODEL_NAME}.yaml", repo / f"{MODEL_NAME}.yaml")
    urls = _parse_remote_files(REMOTE_ROOT / "files.txt")
    for signature in yaml.safe_load((repo / f"{MODEL_NAME}.yaml").read_text())["models"]:
        url = urls[signature]  # its file name ends with the checksum the load verifies
        download_url_to_file(url, str(repo / url.rsplit("/", 1)[1]))
    load_model(cache_dir, "cpu")
    return repo
