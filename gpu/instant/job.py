"""`InstantRun(...).run()`: one instant conversion from claim to output, on the shared worker
runtime (gpu/job_runtime.py: claim, scratch dir, heartbeats, fenced finish, failures).

The same shape as a trained voice's conversion (gpu/conversion/job.py), with the voice's
reference in place of a model: the input is probed like any upload and read as mono 44.1 kHz;
a whole song is separated first and mixed back after (gpu/conversion/song.py's pieces); the
vocal is converted by Seed-VC (gpu/instant/seedvc.py) window by window, each window a
heartbeat, so a cancel or a spent GPU budget stops it within one window. Phases: download,
[separate,] load_model, pitch, convert, [mix,] evaluate, upload. The quality report (speaker
similarity to the reference, its ceiling, F0 correlation to the input) is stored with the job.
"""

import logging
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import soundfile as sf

from gpu.conversion.audio_io import fetch_screened, to_mono
from gpu.conversion.mix import mix
from gpu.errors import JobFailure
from gpu.instant import seedvc
from gpu.job_runtime import KINDS, JobKindSpec, JobRun
from gpu.measures import f0, pitch_range, quality
from gpu.separation.separate import Separator, separate
from pipeline import keys
from pipeline.instant import InstantCalls
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage
from schemas.instant import InstantJobRow, InstantParams, InstantQuality, InstantVoiceRow
from schemas.pitch import suggest

log = logging.getLogger(__name__)
MIN_INPUT_SECONDS = 0.5  # under a few mel frames there is nothing to convert
_models: dict[tuple[str, str, str], seedvc.InstantModel] = {}


def _finish(repo: Repository, job_id: UUID, *outcome: Any, attempt: int | None) -> Any:
    return InstantCalls(repo).finish_job(job_id, *outcome, attempt)


# The worker side of the kind, registered beside the others (gpu/job_runtime.py's KINDS).
KINDS["instant"] = JobKindSpec("instant", "The instant conversion", _finish)


def load_model(settings: Settings, device: str) -> seedvc.InstantModel:
    """Loaded once per process: a warm container converts job after job without reloading."""
    key = (settings.model_cache_dir, device, settings.instant_f0_method)
    if key not in _models:
        _models[key] = seedvc.load(settings.model_cache_dir, device, settings.instant_f0_method)
    return _models[key]


def joined_reference(
    storage: Storage, settings: Settings, voice: InstantVoiceRow, tmp: Path
) -> Path:
    """The voice's clips (its first reference, then the added ones that passed the probe,
    oldest first), each screened like any upload, joined as one mono 44.1 kHz reference and
    cut where the model stops listening: a clip past that point is not even fetched. An
    instant conversion and a line spoken in the voice hear the same reference."""
    wanted = int(seedvc.REFERENCE_SECONDS * seedvc.RATE)
    parts: list[np.ndarray] = []
    for i, key in enumerate([voice.reference_key, *voice.clip_keys]):
        if sum(len(p) for p in parts) >= wanted:
            break
        clip = fetch_screened(
            storage, settings, key, tmp / f"reference-{i}{Path(key).suffix}",
            settings.max_reference_seconds,
        )  # fmt: skip
        to_mono(clip, tmp / f"reference-{i}-mono.wav", seedvc.RATE)
        parts.append(sf.read(tmp / f"reference-{i}-mono.wav", dtype="float32")[0])
    joined = tmp / "reference-mono.wav"
    sf.write(joined, np.concatenate(parts)[:wanted], seedvc.RATE, subtype="FLOAT")
    return joined


class InstantRun(JobRun):
    spec = KINDS["instant"]

    def __init__(
        self,
        repo: Repository,
        storage: Storage,
        settings: Settings,
        job_id: UUID,
        separator: Separator = separate,
    ) -> None:
        super().__init__(repo, storage, settings, job_id)
        self.separator = separator
        self.calls = InstantCalls(repo)
        f0.install(settings.model_cache_dir)

    def phases(self, job: Any) -> None:
        self._convert(InstantJobRow.model_validate(job.model_dump()), self.scratch)

    def _convert(self, job: InstantJobRow, tmp: Path) -> None:
        from gpu.runtime import device

        params = InstantParams.model_validate(job.params)
        self.phase("download", percent=0)
        source = self._fetch(job.input_key, tmp / "input", self.settings.max_conversion_seconds)
        voice = self.calls.job_voice(self.job_id)
        ref_mono = joined_reference(self.storage, self.settings, voice, tmp)
        vocal = source
        if params.input_kind == "song":
            vocal, instrumental = tmp / "song-vocals.wav", tmp / "song-instrumental.wav"
            self.phase("separate", percent=0)
            every = self.settings.heartbeat_seconds
            self.separator(
                source, vocal, instrumental, cache_dir=Path(self.settings.model_cache_dir),
                device=device(), progress=self.progress("separate", every=every),
            )  # fmt: skip
        mono = tmp / "vocal-mono.wav"
        frames = to_mono(vocal, mono, seedvc.RATE)
        if frames < MIN_INPUT_SECONDS * seedvc.RATE:
            raise JobFailure("TOO_SHORT", f"The input is shorter than {MIN_INPUT_SECONDS:g} s.")

        self.phase("load_model", percent=0)
        model = load_model(self.settings, device())
        self.phase("pitch", percent=0)
        pitch = self._pitch(mono, ref_mono)

        self.phase("convert", percent=0)
        audio = sf.read(mono, dtype="float32")[0]
        reference = sf.read(ref_mono, dtype="float32")[0]
        converted = model.convert(
            audio,
            reference,
            transpose=params.transpose,
            auto_pitch=params.auto_pitch,
            diffusion_steps=self.settings.instant_diffusion_steps,
            progress=self.progress("convert"),
        )
        out_vocal = tmp / "out-vocal.wav"
        sf.write(out_vocal, converted, seedvc.RATE, subtype="PCM_16")

        outputs = {"mix": out_vocal}
        if params.input_kind == "song":
            self.phase("mix", percent=0)
            outputs = {part: tmp / f"out-{part}.wav" for part in ("mix", "vocal", "instrumental")}
            mix(
                out_vocal, vocal, instrumental, outputs,
                shift_semitones=params.instrumental_shift(),
                progress=self.progress("mix", every=self.settings.heartbeat_seconds),
            )  # fmt: skip

        self.phase("evaluate", percent=0)
        with self.heartbeat.kept_alive(self.settings.heartbeat_seconds):
            report = measure_quality(audio, converted, reference, params.transpose, self.settings)

        self.phase("upload", percent=100)
        for part in ("vocal", "instrumental", "mix"):  # the output last: it marks the set complete
            if part in outputs:
                key = keys.instant_part_key(job.user_id, job.profile_id, self.job_id, part)
                self.storage.upload_file(outputs[part], key, "audio/wav")
        output_key = keys.instant_part_key(job.user_id, job.profile_id, self.job_id, "mix")
        info = sf.info(str(source))
        self.finish(output_key, info.frames / info.samplerate, pitch, report.model_dump())

    def _fetch(self, key: str, stem: Path, max_seconds: float) -> Path:
        path = stem.with_suffix(Path(key).suffix)
        return fetch_screened(self.storage, self.settings, key, path, max_seconds)

    def _pitch(self, mono: Path, reference: Path) -> dict[str, Any] | None:
        """The input's range beside the reference's and the transpose that would fit them."""
        method = self.settings.instant_f0_method
        with self.heartbeat.kept_alive(self.settings.heartbeat_seconds):
            found = pitch_range.of_file(mono, method)
            voice = pitch_range.of_file(reference, method)
        return None if found is None else suggest(found, voice).model_dump(mode="json")


def measure_quality(
    source: np.ndarray, converted: np.ndarray, reference: np.ndarray, transpose: int,
    settings: Settings,
) -> InstantQuality:  # fmt: skip
    """The trained models' measures: Resemblyzer similarity of the output to the reference,
    the reference's two halves to each other as the ceiling, FCPE F0 correlation to the input
    moved by the transpose. With tiny random weights (tests) the numbers are meaningless."""
    rate = seedvc.RATE
    ref = reference[: int(seedvc.REFERENCE_SECONDS * rate)]
    ref_embedding = quality.embedding(ref, rate)
    similarity = quality.cosine(quality.embedding(converted, rate), ref_embedding)
    half = len(ref) // 2
    ceiling = quality.cosine(
        quality.embedding(ref[:half], rate), quality.embedding(ref[half:], rate)
    )
    melody = quality.melody(
        quality.f0_contour(source, rate), quality.f0_contour(converted, rate), 100.0 * transpose
    )
    return InstantQuality(
        similarity=round(similarity, 4),
        ceiling=round(ceiling, 4),
        f0_correlation=None if melody.corr is None else round(melody.corr, 4),
        suggest_training=similarity < settings.singer_min_similarity,
    )
