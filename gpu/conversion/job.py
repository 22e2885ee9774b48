"""`ConversionRun(...).run()`: one conversion from claim to output, as a worker runs it.

The input is probed like a dataset file (a corrupt or oversize upload fails with a code and
its quota refunded), resampled to the model's rate, and converted window by window, cutting
at the quietest moment near each boundary, so memory stays flat on a 10-minute input and
progress can be reported. Input and output stream through files, so memory stays flat.
The output is a WAV at the model's rate, as long as the input. A whole song (`input_kind`
"song") is separated, converted and mixed back by gpu/conversion/song.py instead.
"""

import logging
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import soundfile as sf

from gpu.conversion.audio_io import SEARCH_SECONDS, WINDOW_SECONDS, next_cut, to_mono
from gpu.conversion.inference import convert
from gpu.conversion.model_cache import ModelCache
from gpu.conversion.song import convert_song
from gpu.errors import STALE_ATTEMPT, Heartbeat, JobCanceled, JobFailure, describe_failure
from gpu.measures import f0, pitch_range
from gpu.separation.separate import Separator, separate
from pipeline import keys
from pipeline.audio import AudioError, measure
from pipeline.audio_header import HeaderError, HeaderLimits, screen_file
from pipeline.formats import too_large_message
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage
from schemas.jobs import ConversionJobRow, ConversionParams, ModelVersionRow
from schemas.pitch import suggest

log = logging.getLogger(__name__)
MIN_INPUT_RATE = 8000  # conversion inputs are resampled to the model's rate anyway


class ConversionRun:
    def __init__(
        self,
        repo: Repository,
        storage: Storage,
        settings: Settings,
        cache: ModelCache,
        job_id: UUID,
        separator: Separator = separate,
    ) -> None:
        self.repo, self.storage, self.settings, self.cache = repo, storage, settings, cache
        self.job_id, self.separator = job_id, separator
        self.heartbeat = Heartbeat(repo, "conversion", job_id)
        self.beat = self.heartbeat.require
        f0.install(settings.model_cache_dir)

    def run(self) -> str:
        job = self.heartbeat.claim()
        if job.status != "running":
            return job.status
        try:
            with tempfile.TemporaryDirectory(dir=self.settings.scratch_dir) as tmp:
                self._convert(job, Path(tmp))
            return "succeeded"
        except JobCanceled:
            return "canceled"
        except Exception as exc:
            code, message = describe_failure(exc, "The conversion")
            log.exception("conversion %s failed: %s", self.job_id, code)
            self.heartbeat.fail(code, message)
            return "canceled" if self.heartbeat.stop_code == STALE_ATTEMPT else "failed"

    def _convert(self, job: ConversionJobRow, tmp: Path) -> None:
        params = ConversionParams.model_validate(job.params)
        self.beat(phase="download", percent=0)
        source = self._fetch_input(job, tmp)
        if params.input_kind == "song":
            convert_song(self, job, params, source, tmp)
            return
        version = self.repo.conversion_model(self.job_id)
        self.beat(phase="load_model", percent=0)
        svc = self.cache.get(version)
        mono, out_path = tmp / "input-mono.wav", tmp / "output.wav"
        frames = to_mono(source, mono, svc.target_sample)
        self.record_pitch(mono, params, version)
        self.infer(svc, mono, out_path, frames, params)
        self.beat(phase="upload", percent=100)
        output_key = keys.conversion_output_key(job.user_id, job.profile_id, self.job_id)
        self.storage.upload_file(out_path, output_key, "audio/wav")
        with self.heartbeat.fenced():
            self.repo.finish_conversion(
                self.job_id, output_key, frames / svc.target_sample, self.heartbeat.attempt
            )

    def _fetch_input(self, job: ConversionJobRow, tmp: Path) -> Path:
        info = self.storage.head(job.input_key)
        if info is None:
            raise JobFailure("INPUT_MISSING", "The uploaded input could not be found.")
        limit = self.settings.max_conversion_bytes
        if info.size > limit:
            raise JobFailure("TOO_LARGE", too_large_message(limit, "Inputs"))
        path = tmp / Path(job.input_key).name
        self.storage.download_file(job.input_key, path)
        seconds = self.settings.max_conversion_seconds
        try:
            # The header's rate, channels and length first, so a forged one sizes nothing.
            screen_file(path, HeaderLimits(MIN_INPUT_RATE, self.settings.max_channels, seconds))
            measure(path, seconds)
        except (AudioError, HeaderError) as exc:
            raise JobFailure(exc.code, exc.message) from exc
        return path

    def record_pitch(self, mono: Path, params: ConversionParams, version: ModelVersionRow) -> None:
        """The input's range next to the voice's and the transpose that would fit them; the
        page offers it, the person decides (this job converts with the transpose it asked)."""
        self.beat(phase="pitch", percent=0)
        with self.heartbeat.kept_alive(self.settings.heartbeat_seconds):  # silent on long inputs
            found = pitch_range.of_file(mono, params.f0_method)
        if found is None:
            return
        advice = suggest(found, version.pitch_range)
        self.repo.record_conversion_pitch(self.job_id, advice)

    def infer(
        self, svc: Any, mono: Path, out_path: Path, frames: int, params: ConversionParams
    ) -> None:
        """Window by window from file to file; each window through the fork's
        `infer_silence`, which chunks it further at silences (≤ `max_chunk_seconds`)."""
        rate = svc.target_sample
        lookahead = int((WINDOW_SECONDS + SEARCH_SECONDS) * rate)
        started, position = time.monotonic(), 0
        with sf.SoundFile(mono) as src, sf.SoundFile(out_path, "w", rate, 1, "PCM_24") as dst:
            while position < frames:
                src.seek(position)
                ahead = src.read(lookahead, dtype="float32")
                cut = next_cut(ahead, rate)
                dst.write(convert(svc, ahead[:cut], params))
                position += cut
                done, elapsed = position / frames, time.monotonic() - started
                self.beat(
                    phase="convert",
                    percent=round(100 * done, 1),
                    eta_s=round(elapsed / done * (1 - done), 1),
                )
