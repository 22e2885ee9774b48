"""`convert(job_id)`: one conversion from claim to output, as a worker runs it.

The input is probed like a dataset file (a corrupt or oversize upload fails with a code and
its quota refunded), resampled to the model's rate, and converted window by window, cutting
at the quietest moment near each boundary, so memory stays flat on a 10-minute input and
progress can be reported. The output is a WAV at the model's rate, as long as the input.
"""

import itertools
import logging
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import soundfile as sf

from gpu.errors import JobCanceled, JobFailure
from gpu.model_cache import ModelCache
from pipeline import keys
from pipeline.audio import AudioError, measure
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage
from schemas.jobs import ConversionParams

log = logging.getLogger(__name__)
WINDOW_SECONDS = 30.0
SEARCH_SECONDS = 2.0


def window_bounds(audio: np.ndarray, rate: int, window: float = WINDOW_SECONDS) -> list[int]:
    """Cut points about every `window` seconds, each moved to the quietest 10 ms within
    ±2 s, so no cut lands in the middle of a loud note."""
    cuts, frame = [0], max(1, rate // 100)
    step, search = int(window * rate), int(SEARCH_SECONDS * rate)
    while cuts[-1] + step + search < len(audio):
        centre = cuts[-1] + step
        region = audio[centre - search : centre + search]
        usable = len(region) // frame * frame
        energy = (region[:usable].reshape(-1, frame) ** 2).mean(axis=1)
        cuts.append(centre - search + int(np.argmin(energy)) * frame)
    return [*cuts, len(audio)]


def load_mono(path: Path, rate: int) -> np.ndarray:
    import librosa

    audio, source_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if source_rate != rate:
        mono = librosa.resample(mono, orig_sr=source_rate, target_sr=rate, res_type="soxr_hq")
    return mono.astype(np.float32)


class ConversionRun:
    def __init__(
        self, repo: Repository, storage: Storage, settings: Settings, cache: ModelCache,
        job_id: UUID,
    ) -> None:  # fmt: skip
        self.repo, self.storage, self.settings, self.cache = repo, storage, settings, cache
        self.job_id = job_id
        self.progress: dict[str, Any] = {}

    def beat(self, **progress: Any) -> None:
        self.progress = self.progress | progress
        row = self.repo.heartbeat_job("conversion", self.job_id, self.progress)
        if row["status"] != "running":
            raise JobCanceled

    def run(self) -> str:
        job = self.repo.claim_job("conversion", self.job_id)
        if job["status"] != "running":
            return job["status"]
        try:
            with tempfile.TemporaryDirectory(dir=self.settings.scratch_dir) as tmp:
                self._convert(job, Path(tmp))
            return "succeeded"
        except JobCanceled:
            return "canceled"
        except Exception as exc:
            code, message = _describe(exc)
            log.exception("conversion %s failed: %s", self.job_id, code)
            self.repo.fail_job("conversion", self.job_id, code, message)
            return "failed"

    def _convert(self, job: dict[str, Any], tmp: Path) -> None:
        params = ConversionParams.model_validate(job["params"])
        self.beat(phase="download", percent=0)
        source = self._fetch_input(job, tmp)
        version = self.repo.get_model_version(UUID(job["user_id"]), UUID(job["model_version_id"]))
        self.beat(phase="load_model", percent=0)
        svc = self.cache.get(version)
        audio = load_mono(source, svc.target_sample)
        output = self._infer(svc, audio, params)
        self.beat(phase="upload", percent=100)
        out_path = tmp / "output.wav"
        sf.write(out_path, output, svc.target_sample, subtype="PCM_16")
        user, profile = UUID(job["user_id"]), UUID(job["profile_id"])
        output_key = keys.conversion_output_key(user, profile, self.job_id)
        self.storage.upload_file(out_path, output_key, "audio/wav")
        self.repo.finish_conversion(self.job_id, output_key, len(audio) / svc.target_sample)

    def _fetch_input(self, job: dict[str, Any], tmp: Path) -> Path:
        info = self.storage.head(job["input_key"])
        if info is None:
            raise JobFailure("INPUT_MISSING", "The uploaded input could not be found.")
        limit = self.settings.max_conversion_bytes
        if info.size > limit:
            raise JobFailure("TOO_LARGE", f"Inputs can be at most {limit // 2**20} MB.")
        path = tmp / Path(job["input_key"]).name
        self.storage.download_file(job["input_key"], path)
        try:
            measure(path, self.settings.max_conversion_seconds)
        except AudioError as exc:
            raise JobFailure(exc.code, exc.message) from exc
        return path

    def _infer(self, svc: Any, audio: np.ndarray, params: ConversionParams) -> np.ndarray:
        speaker = next(iter(svc.spk2id.__dict__))
        bounds = window_bounds(audio, svc.target_sample)
        pieces, started = [], time.monotonic()
        for start, end in itertools.pairwise(bounds):
            pieces.append(svc.infer_silence(
                audio[start:end], speaker=speaker, transpose=params.transpose,
                auto_predict_f0=params.auto_predict_f0, noise_scale=params.noise_scale,
                f0_method=params.f0_method, db_thresh=params.db_thresh,
                pad_seconds=params.pad_seconds, chunk_seconds=params.chunk_seconds,
                max_chunk_seconds=params.max_chunk_seconds,
            ).astype(np.float32))  # fmt: skip
            done = end / len(audio)
            elapsed = time.monotonic() - started
            self.beat(phase="convert", percent=round(100 * done, 1),
                      eta_s=round(elapsed / done * (1 - done), 1))  # fmt: skip
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _describe(exc: Exception) -> tuple[str, str]:
    import torch

    if isinstance(exc, JobFailure):
        return exc.code, exc.message
    if isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError):
        return "OUT_OF_MEMORY", "The conversion ran out of memory."
    return "INTERNAL", "The conversion failed unexpectedly. Your quota was refunded."
