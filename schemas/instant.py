"""Instant voice: a named reference recording and the conversions made with it (Seed-VC, no
training). Requests, rows and the quality report a worker stores with each job."""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from schemas.common import Model, Request
from schemas.conversions import InputUpload
from schemas.jobs import ConversionStatus, InputKind, JobBase, PitchAdvice

ReferenceStatus = Literal["awaiting_upload", "ready", "rejected"]
# What the page asks a person to confirm before a reference is accepted; stored with the voice.
CONSENT_TEXT = (
    "This recording is my own voice, or I have the right to use this voice for conversions."
)


# How much of a voice's clips, joined oldest first, the instant model hears (Seed-VC's own cap:
# the reference shares its DiT's 30 s context with the input): a clip past it is not added.
REFERENCE_USED_SECONDS = 25.0
# The most clips one instant voice holds, its first reference included.
MAX_CLIPS = 5
# A clip added to a voice that already has its 10 s may be short: a phrase or two still adds
# to the likeness, and the voice's first reference carries the minimum (published in /limits).
MIN_CLIP_SECONDS = 3.0


class InstantParams(Request):
    input_kind: InputKind = "vocal"
    # Semitones, as a trained voice's conversion: the input keeps its key unless asked.
    transpose: int = Field(0, ge=-24, le=24)
    # Move the input's median pitch onto the reference's before the transpose (Seed-VC's
    # auto F0 adjust): for a reference sung in another register.
    auto_pitch: bool = False
    # Songs only, as for conversions: None follows the key (shift unless whole octaves).
    shift_instrumental: bool | None = None

    def instrumental_shift(self) -> int:
        if self.input_kind != "song" or self.transpose == 0:
            return 0
        shift = self.shift_instrumental
        if shift is None:
            shift = self.transpose % 12 != 0
        return self.transpose if shift else 0


class InstantVoiceRequest(Request):
    name: str = Field(min_length=1, max_length=100)
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = Field(min_length=1, max_length=200)
    size_bytes: int
    # The person ticked the page's confirmation (CONSENT_TEXT); refused without it.
    consent: bool


class InstantClipRequest(Request):
    """Another clip of the same voice (`POST /instant/voices/{id}/clips`), confirmed again."""

    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = Field(min_length=1, max_length=200)
    size_bytes: int
    consent: bool


class InstantClip(Model):
    """A clip added to a voice: probed like its first reference (at least a few seconds)."""

    id: UUID
    status: ReferenceStatus
    reference_filename: str | None = None
    reference_seconds: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    consent_text: str
    consent_at: datetime
    created_at: datetime


class InstantVoice(InstantClip):
    """A named voice: its first reference's row (the clip fields), and its added clips."""

    profile_id: UUID
    name: str
    # clips added after the first reference (that is this row's), oldest first; the model
    # hears the ready ones joined, first reference first, up to REFERENCE_USED_SECONDS
    clips: list[InstantClip] = Field(default_factory=list)


class InstantVoiceRow(InstantVoice):
    user_id: UUID
    reference_key: str
    reference_size_bytes: int | None = None
    clip_of: UUID | None = None  # set on a clip's own row: the voice it belongs to
    clip_keys: list[str] = Field(default_factory=list)  # the worker's: ready clips' keys


class InstantClipTicket(Model):
    clip: InstantClip
    upload: InputUpload


class InstantVoiceTicket(Model):
    voice: InstantVoice
    upload: InputUpload


class InstantQuality(Model):
    """Measured on the result with the trained models' measures (gpu/measures/quality.py)."""

    similarity: float | None = None  # Resemblyzer cosine, output to reference
    ceiling: float | None = None  # the reference's halves to each other: the best to expect
    f0_correlation: float | None = None  # of the output's pitch to the input's (transposed)
    # below the trained models' threshold: the page offers to train a voice
    suggest_training: bool = False


class InstantJob(JobBase):
    status: ConversionStatus
    voice_id: UUID
    params: dict
    input_filename: str | None = None
    input_duration_sec: float | None = None
    upload_expires_at: datetime | None = None
    files_removed_at: datetime | None = None
    pitch: PitchAdvice | None = None
    quality: InstantQuality | None = None


class InstantJobRow(InstantJob):
    user_id: UUID
    worker_call_id: str | None = None
    quota_period_start: date
    quota_state: Literal["reserved", "charged", "refunded"]
    input_key: str
    output_key: str | None = None
    input_size_bytes: int | None = None


class InstantRequest(Request):
    voice_id: UUID
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = Field(min_length=1, max_length=200)
    size_bytes: int
    params: InstantParams = Field(default_factory=InstantParams)


class InstantTicket(Model):
    job: InstantJob
    upload: InputUpload
