"""Timbre retrieval at conversion time: the fork's k-means cluster model (`cluster.pt`, made
by `gpu.training.cluster`) loaded by us, and the ratio a conversion uses.

The fork's own loader (`so_vits_svc_fork.cluster.get_cluster_model`) calls `torch.load`
without `weights_only`, which torch ≥ 2.6 turns into `weights_only=True`, and that refuses the
numpy arrays the file holds. Allowing all pickles would run whatever a file names; instead the
file is read with `weights_only=True` plus exactly the numpy globals a float array needs, and
its shape checked, then given to the fork's `Svc` as the `cluster_model` it expects (one
scikit-learn `KMeans` per speaker, as its loader builds them).
"""

from pathlib import Path
from typing import Any

import numpy as np

from schemas.jobs import ConversionParams


def _array_globals() -> list[Any]:
    from numpy._core.multiarray import _reconstruct

    return [_reconstruct, np.ndarray, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType]


def load_cluster(path: Path) -> dict[str, Any]:
    """`{speaker: KMeans}` from a cluster file in the fork's format; ValueError when the
    file is not one."""
    import torch
    from sklearn.cluster import KMeans

    with torch.serialization.safe_globals(_array_globals()):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ValueError(f"{path.name} holds no cluster model")
    models = {}
    for speaker, entry in checkpoint.items():
        centres = entry.get("cluster_centers_") if isinstance(entry, dict) else None
        if not isinstance(centres, np.ndarray) or centres.ndim != 2 or not centres.size:
            raise ValueError(f"{path.name}: speaker {speaker!r} has no cluster centres")
        if entry.get("n_features_in_") != centres.shape[1]:
            raise ValueError(f"{path.name}: speaker {speaker!r} has mismatched dimensions")
        model = KMeans(centres.shape[0])  # fitted state set as the fork's loader sets it
        model.__dict__.update(
            n_features_in_=centres.shape[1],
            _n_threads=int(entry.get("_n_threads") or 1),
            cluster_centers_=centres,
        )
        models[str(speaker)] = model
    return models


def attach(svc: Any, cluster: Path | None, default_ratio: float) -> Any:
    """Gives a loaded `Svc` its cluster model (or none) and the ratio conversions that do
    not name one use (the version's, chosen by its quality report)."""
    svc.cluster_model = None if cluster is None else load_cluster(cluster)
    svc.default_cluster_ratio = default_ratio if cluster is not None else 0.0
    return svc


def ratio_for(svc: Any, params: ConversionParams) -> float:
    """The cluster ratio a conversion runs at: the one asked, else the version's default; 0
    for a model without a cluster model (trained before retrieval existed)."""
    if getattr(svc, "cluster_model", None) is None:
        return 0.0
    if params.cluster_ratio is not None:
        return params.cluster_ratio
    return float(getattr(svc, "default_cluster_ratio", 0.0))
