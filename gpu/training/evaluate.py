"""The quality report a training ends with: the exported model converts the held-out pieces
(the fork's validation set, named in the training config's `validation_files`, never trained
on) through the same inference path as a conversion, at transpose 0 and +3, and
`gpu.measures.quality` measures the result against the originals and the training audio. The first
seconds of the held-out audio and its conversion become the preview stored beside the model.

With a cluster model (timbre retrieval, `gpu.training.cluster`) the pieces are converted at
each ratio of `RETRIEVAL_RATIOS`; the one whose conversions sound more like the singer becomes
the version's default, and the rest of the report is measured at it.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from gpu.conversion.inference import convert, load_svc
from gpu.conversion.model_cache import share_contentvec
from gpu.errors import JobCanceled
from gpu.measures import quality
from gpu.runtime import device
from schemas.jobs import ConversionParams
from schemas.quality import (
    PREVIEW_TRANSPOSE,
    RETRIEVAL_RATIOS,
    MelodyScore,
    QualityReport,
    RatioSimilarity,
)

log = logging.getLogger(__name__)
PREVIEW_SECONDS = 10.0
CENTROID_SECONDS = 300.0  # of training audio for the centroid, spread over its pieces
GAP_SECONDS = 0.25  # silence between pieces in the preview
ERROR_CHARS = 300


@dataclass(frozen=True)
class Evaluation:
    report: QualityReport
    original: Path  # the preview pair, WAVs at the model's rate
    converted: Path


def _listed(config: dict[str, Any], which: str) -> list[Path]:
    listing = Path(config["data"][which])
    return [Path(line) for line in listing.read_text().split("\n") if line.strip()]


def _load(path: Path, rate: int) -> np.ndarray:
    audio, found = sf.read(path, dtype="float32", always_2d=True)
    if found != rate:
        raise ValueError(f"{path.name} is at {found} Hz, the model at {rate} Hz")
    return audio.mean(axis=1)


def _spread(paths: list[Path], seconds: float, rate: int) -> list[Path]:
    """Evenly spaced pieces adding up to about `seconds` (all of them when fewer)."""
    lengths = [sf.info(p).frames / rate for p in paths]
    if sum(lengths) <= seconds:
        return paths
    count = max(1, round(len(paths) * seconds / sum(lengths)))
    picks = np.linspace(0, len(paths) - 1, count).round().astype(int)
    return [paths[i] for i in sorted(set(picks))]


def _join(pieces: list[np.ndarray], rate: int) -> np.ndarray:
    gap = np.zeros(int(GAP_SECONDS * rate), np.float32)
    joined: list[np.ndarray] = []
    for piece in pieces:
        joined += [piece, gap]
    return np.concatenate(joined[:-1]) if joined else np.zeros(0, np.float32)


def _melody(originals: np.ndarray, converted: np.ndarray, rate: int, shift: int) -> MelodyScore:
    found = quality.melody(
        quality.f0_contour(originals, rate),
        quality.f0_contour(converted, rate),
        shift_cents=100.0 * shift,
    )
    return MelodyScore(
        transpose=shift,
        f0_corr=None if found.corr is None else round(found.corr, 4),
        f0_rmse_cents=None if found.rmse_cents is None else round(found.rmse_cents, 1),
        voiced_seconds=round(found.voiced_frames * quality.F0_HOP_SECONDS, 2),
    )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def evaluate(
    svc: Any,
    config_path: Path,
    f0_method: str,
    out_dir: Path,
    beat: Callable[[float], None] = lambda percent: None,
) -> Evaluation:
    """Converts and measures; `beat(percent)` after each step (a heartbeat, which may stop
    the job). Raises ValueError when there is no held-out audio to measure."""
    started = time.monotonic()
    config = json.loads(config_path.read_text())
    rate = int(svc.target_sample)
    held_out = [_load(p, rate) for p in _listed(config, "validation_files")]
    held_out = [piece for piece in held_out if piece.size]
    if not held_out:
        raise ValueError("the training config lists no held-out audio")
    ratios = RETRIEVAL_RATIOS if getattr(svc, "cluster_model", None) is not None else (0.0,)
    steps = (len(ratios) + 1) * len(held_out) + 2
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        beat(100 * done / steps)

    training = _spread(_listed(config, "training_files"), CENTROID_SECONDS, rate)
    centre = quality.centroid([quality.embedding(_load(p, rate), rate) for p in training])
    ceiling = [quality.cosine(quality.embedding(o, rate), centre) for o in held_out]
    converted_at: dict[float, list[np.ndarray]] = {}
    similarity_at: dict[float, float] = {}
    for ratio in ratios:
        params = ConversionParams(f0_method=f0_method, cluster_ratio=ratio)
        converted_at[ratio] = []
        for piece in held_out:
            converted_at[ratio].append(convert(svc, piece, params))
            step()
        scores = [quality.cosine(quality.embedding(c, rate), centre) for c in converted_at[ratio]]
        similarity_at[ratio] = round(float(np.mean(scores)), 4)
    # The default: the ratio whose conversions sound more like the singer, by the numbers the
    # report records (0 on a tie). The rest of the report, and the preview, are measured at
    # it: what a conversion will sound like.
    chosen = max(ratios, key=lambda r: (similarity_at[r], -r))
    plain = converted_at[chosen]
    params = ConversionParams(f0_method=f0_method, cluster_ratio=chosen)
    shifted_params = params.model_copy(update={"transpose": PREVIEW_TRANSPOSE})
    shifted = []
    for piece in held_out:
        shifted.append(convert(svc, piece, shifted_params))
        step()
    step()

    originals, converted = _join(held_out, rate), _join(plain, rate)
    melody = [
        _melody(originals, converted, rate, 0),
        _melody(originals, _join(shifted, rate), rate, PREVIEW_TRANSPOSE),
    ]
    mcd = quality.mcd(originals, converted, rate)
    preview = min(len(originals), int(PREVIEW_SECONDS * rate))
    out_dir.mkdir(parents=True, exist_ok=True)
    original_path, converted_path = (
        out_dir / "preview-original.wav",
        out_dir / "preview-converted.wav",
    )
    sf.write(original_path, originals[:preview], rate, subtype="PCM_24")
    sf.write(converted_path, converted[:preview], rate, subtype="PCM_24")
    report = QualityReport(
        speaker_similarity=_round(similarity_at[chosen], 4),
        cluster_ratio=chosen,
        similarity_by_ratio=[
            RatioSimilarity(cluster_ratio=r, speaker_similarity=similarity_at[r]) for r in ratios
        ],
        speaker_similarity_original=_round(float(np.mean(ceiling)), 4),
        melody=melody,
        mcd_db=_round(mcd, 2),
        held_out_seconds=round(sum(p.size for p in held_out) / rate, 2),
        held_out_pieces=len(held_out),
        preview_seconds=round(preview / rate, 2),
        f0_method=f0_method,
        seconds=round(time.monotonic() - started, 2),
        tools=quality.tool_versions(),
    )
    return Evaluation(report, original_path, converted_path)


def measure(
    weights: Path,
    config_path: Path,
    f0_method: str,
    out_dir: Path,
    beat: Callable[[float], None],
    publish: Callable[[Evaluation], None],
    cluster: Path | None = None,
) -> dict[str, Any]:
    """The `metrics` entries of the report, once `publish` stored its preview. A report that
    cannot be made (or stored) never fails the training that made the model: it is recorded
    as `quality: null` with `quality_error` saying why. A stop asked through `beat` (cancel,
    budget) still stops."""
    started = time.monotonic()
    try:
        share_contentvec()
        svc = load_svc(weights, config_path, device(), cluster)
        found = evaluate(svc, config_path, f0_method, out_dir, beat)
        publish(found)
    except JobCanceled:
        raise
    except Exception as exc:  # the model is fine; only its report is missing
        log.exception("the quality report could not be made")
        return {"quality": None, "quality_error": f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]}
    report = found.report.model_copy(update={"seconds": round(time.monotonic() - started, 2)})
    return {"quality": report.model_dump(mode="json")}
