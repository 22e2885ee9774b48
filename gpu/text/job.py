"""`TextRun(...).run()`: one text job from claim to its files, on the shared worker runtime
(gpu/job_runtime.py: claim, scratch dir, heartbeats, the fenced finish, described failures).

Its phases: the voice (`text_voice`: a trained model version from the warm model cache, or an
instant voice: its reference fetched and screened, Seed-VC loaded once per process, through
`gpu.text.speak.instant_target`) with its centroid and recorded range →
`gpu.text.speak.speak` (base voice chosen, base speech, pitch, conversion, loudness, WAV and
MP3, similarities), each step a heartbeat → upload both → `finish_text` with the report.
A conversion container runs these too (modal_app.Converter.speak), so the voices and
ContentVec it keeps loaded serve both.
"""

from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np

from gpu.job_runtime import KINDS, JobRun
from gpu.text.engines import make_engine
from gpu.text.speak import instant_target, speak, trained_target
from gpu.text.weights import kokoro_dir
from pipeline.keys import text_keys
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage
from pipeline.text import text_voice
from schemas.instant import InstantVoiceRow
from schemas.text import TextJobRow, TextOptions


def engines(settings: Settings) -> list[Any]:
    """The engine the deployment speaks with (`VC_TEXT_ENGINE`)."""
    kokoro = kokoro_dir(Path(settings.model_cache_dir))
    return [
        make_engine(settings.text_engine, kokoro / "kokoro-v1.0.onnx", kokoro / "voices-v1.0.bin")
    ]


class TextRun(JobRun):
    spec = KINDS["text"]

    def __init__(
        self, repo: Repository, storage: Storage, settings: Settings, cache: Any, job_id: UUID
    ) -> None:
        super().__init__(repo, storage, settings, job_id)
        self.cache = cache

    def phases(self, job: TextJobRow) -> None:
        from gpu.measures import f0

        f0.install(self.settings.model_cache_dir)
        self.phase("load_model", percent=0)
        voice = text_voice(self.repo, self.job_id)
        centroid = None if voice.centroid is None else np.asarray(voice.centroid, np.float64)
        if centroid is not None:
            centroid = centroid / np.linalg.norm(centroid)
        options = TextOptions.model_validate(job.params)
        if voice.voice_kind == "instant":
            assert voice.instant_voice is not None  # SQL: an instant job names a ready voice
            target = self._instant(voice.instant_voice, options)
        else:
            assert voice.model_version is not None  # SQL: a trained job names its version
            svc = self.cache.get(voice.model_version)
            target = trained_target(svc, voice.model_version.pitch_range, centroid)
        spoken = speak(
            job.text,
            job.language,
            options,
            engines(self.settings),
            target,
            self.scratch,
            lambda phase, **progress: self.phase(phase, **progress),
        )
        self.phase("upload", percent=100)
        wav_key, mp3_key = text_keys(job.user_id, job.profile_id, self.job_id)
        self.storage.upload_file(spoken.wav, wav_key, "audio/wav")
        self.storage.upload_file(spoken.mp3, mp3_key, "audio/mpeg")
        self.finish(wav_key, mp3_key, spoken.report.seconds, spoken.report)

    def _instant(self, voice: InstantVoiceRow, options: TextOptions) -> Any:
        """The instant voice's clips joined as an instant conversion hears them (each screened
        like any upload, mono at Seed-VC's rate, 25 s at most), its recorded range, and the
        model (loaded once per process)."""
        import soundfile as sf

        from gpu.instant.job import joined_reference, load_model
        from gpu.measures import pitch_range
        from gpu.runtime import device

        mono = joined_reference(self.storage, self.settings, voice, self.scratch)
        with self.heartbeat.kept_alive(self.settings.heartbeat_seconds):
            model = load_model(self.settings, device())
            voice_range = pitch_range.of_file(mono, options.f0_method)
        reference = sf.read(mono, dtype="float32")[0]
        return instant_target(
            model,
            reference,
            voice_range,
            self.settings.instant_diffusion_steps,
            self.progress("convert"),
        )
