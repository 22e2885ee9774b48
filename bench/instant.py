"""Instant voice speed: seconds and real-time factor of the Seed-VC adapter for a 30 s and a
3-minute input with a 25 s reference, at the real architecture sizes (the singing preset's
200M DiT, BigVGAN v2 44 kHz 512x, Whisper-small's encoder) with random weights, warm (one
untimed conversion first). The goal on a GPU: at most 15 s for a 30 s input.

    .venv/bin/python -m bench.instant [--device cuda] [--steps 30] [--seconds 30 180] [--tiny]

`--tiny` uses the offline test weights instead (a smoke run on a CPU: its seconds say
nothing about the real model). Nothing is downloaded: the weights are written at random in
a temporary directory in the layout `gpu/instant/weights.py` bakes.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gpu.instant.weights import TINY_VOCODER

# BigVGAN v2 44 kHz 512x: the tiny test vocoder's mel and hop, at the real widths and rates.
REAL_VOCODER = TINY_VOCODER | {
    "upsample_rates": [8, 4, 2, 2, 2, 2],
    "upsample_kernel_sizes": [16, 8, 4, 4, 4, 4],
    "upsample_initial_channel": 1536,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
}


def write_real_sized(cache: Path) -> None:
    """The production layout with random weights of the real sizes."""
    import torch
    import yaml
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from gpu.instant import seedvc, weights

    modules = seedvc.import_modules()
    root = weights.folder(cache)
    (root / weights.VOCODER_DIRNAME).mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(
        Path(seedvc.package_file("configs/presets/" + weights.CONFIG_FILE)).read_text()
    )
    model = modules.build_model(modules.recursive_munch(config["model_params"]), stage="DiT")
    torch.save({"net": {k: model[k].state_dict() for k in model}}, root / weights.DIT_NAME)
    (root / weights.CONFIG_NAME).write_text(yaml.safe_dump(config))
    vocoder = modules.BigVGAN(modules.AttrDict(dict(REAL_VOCODER)), use_cuda_kernel=False)
    torch.save(
        {"generator": vocoder.state_dict()}, root / weights.VOCODER_DIRNAME / "bigvgan_generator.pt"
    )
    (root / weights.VOCODER_DIRNAME / "config.json").write_text(json.dumps(REAL_VOCODER))
    small = WhisperConfig(
        d_model=768, encoder_layers=12, encoder_attention_heads=12, encoder_ffn_dim=3072,
        decoder_layers=1, decoder_attention_heads=12, decoder_ffn_dim=64, num_mel_bins=80,
        vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        max_target_positions=16,
    )  # fmt: skip
    WhisperModel(small).save_pretrained(root / weights.WHISPER_DIRNAME)
    WhisperFeatureExtractor().save_pretrained(root / weights.WHISPER_DIRNAME)
    params = sum(p.numel() for k in model for p in model[k].parameters())
    print(f"DiT + length regulator: {params / 1e6:.1f} M parameters (random)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 180.0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--f0", default="fcpe", help="pitch tracker (fcpe ships its weights)")
    args = parser.parse_args()
    found = measure(args.device, args.steps, args.seconds, args.tiny, args.f0)
    print(f"load: {found['load_s']:.1f} s on {found['device']}")
    for line in found["inputs"]:
        print(f"{line['seconds_of_audio']:6.0f} s input: {line['seconds']:7.2f} s, "
              f"RTF {line['rtf']:.3f} ({args.steps} steps)")  # fmt: skip


def measure(
    device: str | None, steps: int, seconds: list[float], tiny: bool, f0: str = "fcpe"
) -> dict:
    """Load once, convert 5 s untimed, then each input length warm (bench/gpu.py calls this
    too, so one GPU run covers the instant tier)."""
    import torch

    from gpu.instant import seedvc, weights
    from tests.vocals import singing

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with tempfile.TemporaryDirectory(prefix="bench-instant-") as tmp:
        cache = Path(tmp)
        (weights.write_tiny if tiny else write_real_sized)(cache)
        started = time.perf_counter()
        model = seedvc.load(cache, device, f0)
        found: dict = {"device": device, "steps": steps, "tiny": tiny,
                       "load_s": time.perf_counter() - started, "inputs": []}  # fmt: skip
        reference = singing(25.0, f0=330, seed=1).astype(np.float32)
        model.convert(singing(5.0, seed=2).astype(np.float32), reference, diffusion_steps=steps)
        for length in seconds:
            source = singing(length, f0=220, seed=3).astype(np.float32)
            sync()
            started = time.perf_counter()
            out = model.convert(source, reference, diffusion_steps=steps)
            sync()
            took = time.perf_counter() - started
            assert len(out) == len(source)
            found["inputs"].append({"seconds_of_audio": length, "seconds": took,
                                    "rtf": took / length})  # fmt: skip
        return found


if __name__ == "__main__":
    main()
