"""Timbre retrieval's training half: after the model, the fork's k-means cluster model of the
singer's ContentVec features (`so_vits_svc_fork.cluster.train_cluster`), stored beside the
weights as `cluster.pt` in the fork's own file format, so a downloaded model works with the
fork's `svc infer -k cluster.pt -r RATIO` as well as here.

Only the training pieces are clustered, never the held-out ones: the quality report measures
retrieval on the held-out pieces, and centres made from them would score it on audio it has
already seen. The number of clusters follows the data at upstream's density (its default of
10 000 clusters is sized for hour-long datasets, about 30 frames a cluster); fewer frames
than that make centres that are single frames, and the cap bounds the clustering time.
"""

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from pipeline.storage import Storage

log = logging.getLogger(__name__)
FRAMES_PER_CLUSTER = 30
MAX_CLUSTERS = 10_000  # upstream's default
MIN_CLUSTERS = 2
ERROR_CHARS = 300


@dataclass(frozen=True)
class Retrieval:
    path: Path | None  # the cluster file, None when it could not be made
    metrics: dict[str, Any]  # `retrieval` (and `retrieval_error`) for the version's metrics


def clusters_for(frames: int) -> int:
    return max(MIN_CLUSTERS, min(MAX_CLUSTERS, frames // FRAMES_PER_CLUSTER))


def _training_pieces(config: dict[str, Any]) -> dict[str, list[Path]]:
    """The training list's pieces by speaker (the fork's layout: `.../{speaker}/{piece}.wav`,
    features beside them as `{piece}.wav.data.pt`)."""
    listing = Path(config["data"]["training_files"]).read_text().split("\n")
    pieces: dict[str, list[Path]] = {}
    for line in filter(str.strip, listing):
        path = Path(line.strip())
        pieces.setdefault(path.parent.name, []).append(path)
    return pieces


def train(config_path: Path, out_path: Path) -> dict[str, Any]:
    """Clusters each speaker's training features with the fork's `train_cluster` (mini-batch
    k-means) and writes the checkpoint as the fork's `cluster.train_cluster.main` does."""
    import torch
    from so_vits_svc_fork.cluster.train_cluster import train_cluster

    started = time.monotonic()
    config = json.loads(config_path.read_text())
    hop = int(config["data"]["hop_length"])
    checkpoint, clusters, frames_total = {}, 0, 0
    for speaker, pieces in _training_pieces(config).items():
        frames = sum(sf.info(p).frames // hop for p in pieces)
        n_clusters = clusters_for(frames)
        with tempfile.TemporaryDirectory() as tmp:  # the fork reads every `*.data.pt` under it
            for piece in pieces:
                features = piece.with_name(piece.name + ".data.pt")
                (Path(tmp) / features.name).symlink_to(features.resolve())
            checkpoint[speaker] = train_cluster(Path(tmp), n_clusters=n_clusters)
        clusters, frames_total = clusters + n_clusters, frames_total + frames
    if not checkpoint:
        raise ValueError("the training config lists no training pieces")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out_path)
    return {
        "clusters": clusters,
        "frames": frames_total,
        "seconds": round(time.monotonic() - started, 2),
    }


def build(storage: Storage, config_path: Path, out_dir: Path, key: str) -> Retrieval:
    """Trains and stores the cluster model at `key`. Like the quality report, it never fails
    the training that made the model: a version without it converts at ratio 0, and
    `retrieval_error` says why."""
    path = out_dir / "cluster.pt"
    try:
        found = train(config_path, path)
        storage.upload_file(path, key, "application/octet-stream")
    except Exception as exc:  # the model is fine; only retrieval is missing
        log.exception("the cluster model could not be made")
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        return Retrieval(None, {"retrieval": None, "retrieval_error": error})
    log.info("cluster model: %s", found)
    return Retrieval(path, {"retrieval": found})
