"""`TextRun(...).run()`: one text job from claim to its files, as a worker runs it.

Claim → the voice (`text_voice`: a trained model version from the warm model cache, or an
instant voice through `gpu.text.speak.instant_target`) with its centroid and recorded range →
`gpu.text.speak.speak` (base voice chosen, base speech, pitch, conversion, loudness, WAV and
MP3, similarities) with heartbeats → upload both → `finish_text` with the report.
A conversion container runs these too (modal_app.Converter.speak), so the voices and
ContentVec it keeps loaded serve both.
"""

import logging
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np

from gpu.errors import STALE_ATTEMPT, Heartbeat, JobCanceled, describe_failure
from gpu.text.engines import make_engine
from gpu.text.speak import instant_target, speak, trained_target
from gpu.text.weights import kokoro_dir
from pipeline.keys import text_keys
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage
from pipeline.text import finish_text, text_voice
from schemas.text import TextJobRow, TextOptions

log = logging.getLogger(__name__)


def engines(settings: Settings) -> list[Any]:
    """The engine the deployment speaks with (`VC_TEXT_ENGINE`)."""
    kokoro = kokoro_dir(Path(settings.model_cache_dir))
    return [
        make_engine(settings.text_engine, kokoro / "kokoro-v1.0.onnx", kokoro / "voices-v1.0.bin")
    ]


class TextRun:
    def __init__(
        self, repo: Repository, storage: Storage, settings: Settings, cache: Any, job_id: UUID
    ) -> None:
        self.repo, self.storage, self.settings, self.cache = repo, storage, settings, cache
        self.job_id = job_id
        self.heartbeat = Heartbeat(repo, "text", job_id)

    def run(self) -> str:
        job = self.heartbeat.claim()
        if job.status != "running":
            return job.status
        try:
            with tempfile.TemporaryDirectory(dir=self.settings.scratch_dir, prefix="text-") as tmp:
                self.phases(job, Path(tmp))  # type: ignore[arg-type]
            return "succeeded"
        except JobCanceled:
            return "canceled"
        except Exception as exc:
            code, message = describe_failure(exc, "Speaking the text")
            log.exception("text %s failed: %s", self.job_id, code)
            self.heartbeat.fail(code, message)
            return "canceled" if self.heartbeat.stop_code == STALE_ATTEMPT else "failed"

    def beat(self, **progress: Any) -> None:
        self.heartbeat.require(**progress)

    def phases(self, job: TextJobRow, scratch: Path) -> None:
        from gpu.measures import f0

        f0.install(self.settings.model_cache_dir)
        self.beat(phase="load_model", percent=0)
        voice = text_voice(self.repo, self.job_id)
        centroid = None if voice.centroid is None else np.asarray(voice.centroid, np.float64)
        if centroid is not None:
            centroid = centroid / np.linalg.norm(centroid)
        if voice.voice_kind == "instant":
            target = instant_target(voice.instant_voice_id)
        else:
            assert voice.model_version is not None  # SQL: a trained job names its version
            svc = self.cache.get(voice.model_version)
            target = trained_target(svc, voice.model_version.pitch_range, centroid)
        options = TextOptions.model_validate(job.params)
        spoken = speak(
            job.text, job.language, options, engines(self.settings), target, scratch, self.beat
        )
        self.beat(phase="upload", percent=100)
        wav_key, mp3_key = text_keys(job.user_id, job.profile_id, self.job_id)
        self.storage.upload_file(spoken.wav, wav_key, "audio/wav")
        self.storage.upload_file(spoken.mp3, mp3_key, "audio/mpeg")
        with self.heartbeat.fenced():
            finish_text(
                self.repo,
                self.job_id,
                wav_key,
                mp3_key,
                spoken.report.seconds,
                spoken.report,
                self.heartbeat.attempt,
            )
