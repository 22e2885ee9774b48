"""`ConversionRun(...).run()`: one conversion from claim to output, as a worker runs it.

The input is probed like a dataset file (a corrupt or oversize upload fails with a code and
its quota refunded), resampled to the model's rate, and converted window by window, cutting
at the quietest moment near each boundary, so memory stays flat on a 10-minute input and
progress can be reported. Input and output stream through files, so memory stays flat.
The output is a WAV at the model's rate, as long as the input. A whole song (`input_kind`
"song") is separated, converted and mixed back by gpu/conversion/song.py instead.
"""

import logging
from pathlib import Path
from typing import Any
from uuid import UUID

import soundfile as sf

from gpu.conversion.audio_io import SEARCH_SECONDS, WINDOW_SECONDS, next_cut, to_mono
from gpu.conversion.inference import convert
from gpu.conversion.model_cache import ModelCache
from gpu.conversion.song import convert_song
from gpu.errors import JobCanceled, JobFailure
from gpu.job_runtime import KINDS, JobRun
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


class ConversionRun(JobRun):
    spec = KINDS["conversion"]

    def __init__(
        self,
        repo: Repository,
        storage: Storage,
        settings: Settings,
        cache: ModelCache,
        job_id: UUID,
        separator: Separator = separate,
    ) -> None:
        super().__init__(repo, storage, settings, job_id)
        self.cache, self.separator = cache, separator
        f0.install(settings.model_cache_dir)

    def phases(self, job: ConversionJobRow) -> None:
        params = ConversionParams.model_validate(job.params)
        self.phase("download", percent=0)
        source = self._fetch_input(job)
        if params.input_kind == "song":
            convert_song(self, job, params, source)
            return
        version = self.repo.conversion_model(self.job_id)
        self.phase("load_model", percent=0)
        svc = self.cache.get(version)
        mono, out_path = self.scratch / "input-mono.wav", self.scratch / "output.wav"
        frames = to_mono(source, mono, svc.target_sample)
        self.record_pitch(mono, params, version)
        self.infer(svc, mono, out_path, frames, params)
        self.phase("upload", percent=100)
        output_key = keys.conversion_output_key(job.user_id, job.profile_id, self.job_id)
        self.storage.upload_file(out_path, output_key, "audio/wav")
        self.finish(output_key, frames / svc.target_sample)

    def _fetch_input(self, job: ConversionJobRow) -> Path:
        info = self.storage.head(job.input_key)
        if info is None:
            raise JobFailure("INPUT_MISSING", "The uploaded input could not be found.")
        limit = self.settings.max_conversion_bytes
        if info.size > limit:
            raise JobFailure("TOO_LARGE", too_large_message(limit, "Inputs"))
        path = self.scratch / Path(job.input_key).name
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
        self.phase("pitch", percent=0)
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
        progress, position = self.progress("convert"), 0
        with sf.SoundFile(mono) as src, sf.SoundFile(out_path, "w", rate, 1, "PCM_16") as dst:
            while position < frames:
                src.seek(position)
                ahead = src.read(lookahead, dtype="float32")
                cut = next_cut(ahead, rate)
                dst.write(convert(svc, ahead[:cut], params))
                position += cut
                if not progress(position / frames):
                    raise JobCanceled
