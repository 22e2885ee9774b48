"""Voice profiles and their datasets."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, field_validator

from schemas.common import Model, Request
from schemas.constraints import document_text_pattern, has_refused_chars
from schemas.jobs import ConversionJob, ModelVersion, TrainingInput, TrainingJob


class ProfileCreate(Request):
    name: str = Field(min_length=1, max_length=80, json_schema_extra=document_text_pattern)

    @field_validator("name")
    @classmethod
    def _visible(cls, value: str) -> str:
        """Exactly the published pattern: something visible, no control or format
        characters; surrounding spaces are dropped."""
        value = value.strip()
        if not value or has_refused_chars(value):
            raise ValueError("the name must be printable text")
        return value


class DatasetSummary(Model):
    ready_files: int
    pending_files: int
    rejected_files: int
    ready_seconds: float
    voice_ratio: float | None = None  # duration-weighted over ready files
    snr_db: float | None = None  # total vocal power over total noise power, ready files
    singer_consistency: float | None = None  # mean similarity of each file to the others
    other_singer_files: int = 0
    full_mix_files: int = 0  # whole songs, counted apart: they never train, their vocals do


class SingerCheckFile(TrainingInput):
    """A ready file the singer check still has to embed, with what the probe recorded of it:
    the same sealed read as the training's (`gpu.sealed`), so the check decodes exactly the
    bytes the probe judged."""


class QualityWarning(Model):
    """Something worth fixing in a file that is still usable: a sentence and its number."""

    code: str
    severity: Literal["note", "minor", "major"]  # a note leaves the grade alone
    value: float
    message: str


class Profile(Model):
    id: UUID
    name: str
    status: Literal["draft", "ready", "disabled"]
    disabled_reason: str | None = None  # set when an operator disabled the profile
    active_model_version_id: UUID | None = None
    dataset: DatasetSummary
    created_at: datetime
    updated_at: datetime


class ProfileDetail(Profile):
    active_model: ModelVersion | None = None
    recent_trainings: list[TrainingJob] = []
    recent_conversions: list[ConversionJob] = []


class UploadRequest(Request):
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = Field(min_length=1, max_length=200)
    size_bytes: int
    # A whole song (voice over music): the probe checks it, then its vocal is separated into
    # a dataset file of its own, which trains; the song itself never does.
    full_mix: bool = False


class UploadTicket(Model):
    """Where and how to PUT the bytes: the signature binds the content type and length."""

    file_id: UUID
    object_key: str
    upload_url: str
    headers: dict[str, str]
    expires_at: datetime


class DatasetFile(Model):
    id: UUID
    profile_id: UUID
    user_id: UUID
    object_key: str
    filename: str
    content_type: str
    status: Literal["pending", "ready", "rejected", "deleted"]
    size_bytes: int
    etag: str | None = None
    duration_sec: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    format: str | None = None
    loudness_lufs: float | None = None
    peak_dbfs: float | None = None
    clipping_ratio: float | None = None
    silence_ratio: float | None = None
    snr_db: float | None = None  # the voice over the steady noise under it, dB
    voice_ratio: float | None = None  # share of the file Silero VAD hears as voice
    low_band_ratio: float | None = None  # share of the power below 70 Hz
    noise_level: Literal["clean", "some", "noisy"] | None = None
    warnings: list[QualityWarning] = []
    singer_similarity: float | None = None  # cosine to the other files' voice centroid
    other_singer: bool | None = None  # probably another person
    quality_grade: str | None = None
    quality_notes: str | None = None
    reject_code: str | None = None
    reject_message: str | None = None
    created_at: datetime
    probed_at: datetime | None = None
    probe_attempts: int = 0
    full_mix: bool = False  # a whole song: never trains; its separated vocal does
    derived_from: UUID | None = None  # on a separated vocal: the mix it came from
