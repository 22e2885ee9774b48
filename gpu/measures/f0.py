"""Pitch trackers the fork lacks (FCPE, RMVPE), plugged into the fork's own F0 dispatch.

Training's feature extraction (`preprocess_hubert_f0`) and conversion (`Svc.get_unit_f0`)
both look up `so_vits_svc_fork.f0.compute_f0` on the module at call time, so wrapping that one
function makes every F0 the fork computes come from the chosen tracker, with no edit to the
installed package: `install()` replaces it with a dispatcher that answers `fcpe` and `rmvpe`
itself and hands every other method to the fork's original.

Both trackers return F0 on the fork's frame grid (`hop_length` samples at `sampling_rate`,
`p_len` frames), 0 for unvoiced frames, as the fork's own trackers do.
"""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpu.errors import JobFailure

log = logging.getLogger(__name__)
TRACKERS = ("fcpe", "rmvpe")
F0_MIN, F0_MAX = 50.0, 1100.0  # the range the fork's coarse F0 embedding covers
RMVPE_DIRNAME = "rmvpe"
TRACKER_RATE = 16000
TRACKER_HOP_SECONDS = 0.01

_state: dict[str, Any] = {"cache_dir": None, "models": {}}


def configure(cache_dir: Path | str) -> None:
    """Where RMVPE's weights live (`<cache>/rmvpe`); FCPE's ship inside its wheel."""
    _state["cache_dir"] = Path(cache_dir)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _fcpe() -> Any:
    if "fcpe" not in _state["models"]:
        from torchfcpe import spawn_bundled_infer_model

        _state["models"]["fcpe"] = spawn_bundled_infer_model(device=_device())
    return _state["models"]["fcpe"]


def rmvpe_dir() -> Path | None:
    cache = _state["cache_dir"]
    return None if cache is None else cache / RMVPE_DIRNAME


def _rmvpe() -> Any:
    if "rmvpe" not in _state["models"]:
        from gpu.measures import rmvpe

        folder = rmvpe_dir()
        if folder is None or not (folder / rmvpe.WEIGHTS_NAME).exists():
            raise JobFailure(
                "PITCH_TRACKER_UNAVAILABLE",
                "The RMVPE pitch tracker is not installed on this worker; choose FCPE.",
            )
        _state["models"]["rmvpe"] = rmvpe.load(folder, _device())
    return _state["models"]["rmvpe"]


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return audio if rate == TRACKER_RATE else soxr.resample(audio, rate, TRACKER_RATE, "HQ")


def _fcpe_f0(audio16k: np.ndarray) -> np.ndarray:
    import torch

    wav = torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))[None, :, None]
    f0 = _fcpe().infer(wav, sr=TRACKER_RATE, decoder_mode="local_argmax", threshold=0.006)
    return f0[0, :, 0].float().cpu().numpy()


def _rmvpe_f0(audio16k: np.ndarray) -> np.ndarray:
    return _rmvpe().f0(audio16k.astype(np.float32))


def _to_grid(f0: np.ndarray, p_len: int, hop_seconds: float) -> np.ndarray:
    """From the tracker's 10 ms frames to the fork's: the nearest tracker frame to each."""
    index = np.rint(np.arange(p_len) * hop_seconds / TRACKER_HOP_SECONDS).astype(int)
    out = f0[np.clip(index, 0, len(f0) - 1)].astype(np.float64)
    out[(out < F0_MIN) | ~np.isfinite(out)] = 0.0
    return np.minimum(out, F0_MAX)


def track(
    audio: np.ndarray, rate: int, hop_length: int, method: str, p_len: int | None = None
) -> np.ndarray:
    """F0 in Hz on the fork's frame grid, 0 where unvoiced, by FCPE or RMVPE."""
    p_len = p_len or len(audio) // hop_length
    peak = float(np.abs(audio).max(initial=0.0))
    scaled = audio * (0.95 / peak) if peak > 0 else audio  # the trackers expect [-1, 1]
    audio16k = _to_16k(scaled.astype(np.float32), rate)
    raw = _fcpe_f0(audio16k) if method == "fcpe" else _rmvpe_f0(audio16k)
    if len(raw) == 0:
        return np.zeros(p_len)
    return _to_grid(raw, p_len, hop_length / rate)


def install(cache_dir: Path | str | None = None) -> None:
    """Make the fork's `compute_f0` answer `fcpe` and `rmvpe` too (idempotent)."""
    import so_vits_svc_fork.f0 as fork_f0

    if cache_dir is not None:
        configure(cache_dir)
    if getattr(fork_f0.compute_f0, "svc_pipeline_original", None) is not None:
        return
    original: Callable[..., np.ndarray] = fork_f0.compute_f0

    def compute_f0(
        wav_numpy: np.ndarray,
        p_len: int | None = None,
        sampling_rate: int = 44100,
        hop_length: int = 512,
        method: str = "dio",
        **kwargs: Any,
    ) -> np.ndarray:
        if method not in TRACKERS:
            return original(wav_numpy, p_len, sampling_rate, hop_length, method, **kwargs)
        return track(wav_numpy, sampling_rate, hop_length, method, p_len)

    compute_f0.svc_pipeline_original = original  # type: ignore[attr-defined]
    fork_f0.compute_f0 = compute_f0
    log.info("pitch trackers %s added to the fork's compute_f0", ", ".join(TRACKERS))
