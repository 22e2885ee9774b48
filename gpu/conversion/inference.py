"""The one inference path: a model version loaded as the fork's `Svc` and audio converted
through its `infer_silence` with a conversion's parameters. Conversions and the training's
quality report both go through here, so the report measures what a person would hear.
"""

from pathlib import Path
from typing import Any

import numpy as np

from gpu.conversion.retrieval import attach, ratio_for
from schemas.jobs import ConversionParams


def load_svc(
    model_path: Path,
    config_path: Path,
    device: str,
    cluster: Path | None = None,
    cluster_ratio: float = 0.0,
) -> Any:
    """The fork's `Svc` for exported weights and their config (ContentVec is shared per
    device once `gpu.conversion.model_cache.share_contentvec()` ran), with the version's
    cluster model loaded by us (`gpu.conversion.retrieval`: the fork's loader is broken on
    torch ≥ 2.6) and `cluster_ratio` the default conversions use."""
    from so_vits_svc_fork.inference.core import Svc

    svc = Svc(net_g_path=model_path, config_path=config_path, device=device)
    return attach(svc, cluster, cluster_ratio)


def speaker_of(svc: Any) -> str:
    """A voice model holds one speaker: the dataset's."""
    return next(iter(svc.spk2id.__dict__))


def convert(svc: Any, audio: np.ndarray, params: ConversionParams) -> np.ndarray:
    """Mono float32 audio at `svc.target_sample`, converted; as long as the input. The fork's
    `infer_silence` cuts it further at silences (at most `max_chunk_seconds` a chunk)."""
    return svc.infer_silence(
        np.asarray(audio, dtype=np.float32),
        speaker=speaker_of(svc),
        transpose=params.transpose,
        cluster_infer_ratio=ratio_for(svc, params),
        auto_predict_f0=params.auto_predict_f0,
        noise_scale=params.noise_scale,
        f0_method=params.f0_method,
        db_thresh=params.db_thresh,
        pad_seconds=params.pad_seconds,
        chunk_seconds=params.chunk_seconds,
        max_chunk_seconds=params.max_chunk_seconds,
    ).astype(np.float32)
