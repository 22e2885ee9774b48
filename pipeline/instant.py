"""Instant voice on the service side: a named reference (with the person's consent), its
probe, its deletion, and instant conversions requested like conversions (the job row first,
then a PUT URL; the upload's event queues the job and starts a worker, gpu/instant/job.py).

The SQL calls live here rather than in `Repository`, so the kind stays in its own files until
the shared job machine's kind declarations take it over.
"""

import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from pipeline import keys
from pipeline.audio import AudioError, measure
from pipeline.audio_header import HeaderError, HeaderLimits, screen_file, screen_head
from pipeline.errors import PipelineError, Unavailable
from pipeline.formats import check_declared_format, check_published_format, check_size
from pipeline.probe import CLIPPED_RATIO, SILENT_RATIO, _fetch, _read_head
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import PresignedUpload, Storage
from schemas.instant import (
    CONSENT_TEXT,
    MAX_CLIPS,
    MIN_CLIP_SECONDS,
    REFERENCE_USED_SECONDS,
    InstantClipRequest,
    InstantJob,
    InstantJobRow,
    InstantRequest,
    InstantVoiceRequest,
    InstantVoiceRow,
)

log = logging.getLogger(__name__)


class InstantCalls:
    """Typed calls to 67_instant.sql, with the limits from settings passed in."""

    def __init__(self, repo: Repository) -> None:
        self.repo, self.db, self.settings = repo, repo.db, repo.settings

    def create_voice(self, **args: Any) -> InstantVoiceRow:
        return InstantVoiceRow.model_validate(self.db.call("create_instant_voice", **args))

    def voice_by_id(self, voice_id: UUID) -> InstantVoiceRow | None:
        row = self.db.call("get_instant_voice_by_id", voice_id=voice_id)
        return InstantVoiceRow.model_validate(row) if row else None

    def voice(self, user_id: UUID, voice_id: UUID) -> InstantVoiceRow:
        row = self.db.call("get_instant_voice", user_id=user_id, voice_id=voice_id)
        return InstantVoiceRow.model_validate(row)

    def voices(self, user_id: UUID, profile_id: UUID) -> list[InstantVoiceRow]:
        rows = self.db.call("list_instant_voices", user_id=user_id, profile_id=profile_id)
        return [InstantVoiceRow.model_validate(r) for r in rows]

    def add_clip(self, **args: Any) -> InstantVoiceRow:
        row = self.db.call(
            "add_instant_clip", **args, max_clips=MAX_CLIPS, max_seconds=REFERENCE_USED_SECONDS
        )
        return InstantVoiceRow.model_validate(row)

    def record_reference(
        self, voice_id: UUID, status: str, seconds: float | None, code: str | None = None,
        message: str | None = None,
    ) -> InstantVoiceRow:  # fmt: skip
        row = self.db.call(
            "record_instant_reference", voice_id=voice_id, status=status, seconds=seconds,
            error_code=code, error_message=message,
        )  # fmt: skip
        return InstantVoiceRow.model_validate(row)

    def delete_voice(self, user_id: UUID, voice_id: UUID) -> list[str]:
        return list(
            self.db.call("delete_instant_voice", user_id=user_id, voice_id=voice_id)["keys"]
        )

    def create_job(self, **args: Any) -> InstantJobRow:
        s = self.settings
        row = self.db.call(
            "create_instant_job",
            **args,
            default_limit=s.instant_conversions_per_day,
            max_active=s.max_active_instant,
            gpu_seconds_per_month=s.gpu_seconds_per_month,
        )
        return InstantJobRow.model_validate(row)

    def queue_job(self, job_id: UUID) -> InstantJobRow:
        return InstantJobRow.model_validate(self.db.call("queue_instant_job", job_id=job_id))

    def job_voice(self, job_id: UUID) -> InstantVoiceRow:
        return InstantVoiceRow.model_validate(self.db.call("instant_job_voice", job_id=job_id))

    def finish_job(
        self, job_id: UUID, output_key: str, seconds: float, pitch: dict | None,
        quality: dict | None, attempt: int | None,
    ) -> InstantJobRow:  # fmt: skip
        row = self.db.call(
            "finish_instant_job", job_id=job_id, output_key=output_key,
            input_duration_sec=seconds, pitch=pitch, quality=quality, attempt=attempt,
        )  # fmt: skip
        return InstantJobRow.model_validate(row)


def request_voice(
    repo: Repository, storage: Storage, user_id: UUID, profile_id: UUID, req: InstantVoiceRequest
) -> tuple[InstantVoiceRow, PresignedUpload]:
    """The voice row (awaiting its reference, the consent stored) and a PUT URL for it."""
    settings = repo.settings
    filename, ext, content_type = _checked_reference(req, settings)
    voice_id = uuid4()
    key = keys.instant_reference_key(user_id, profile_id, voice_id, ext)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.upload_url_seconds)
    voice = InstantCalls(repo).create_voice(
        user_id=user_id, profile_id=profile_id, voice_id=voice_id, name=req.name,
        reference_key=key, filename=filename, size_bytes=req.size_bytes,
        consent_text=CONSENT_TEXT, upload_expires_at=expires_at,
    )  # fmt: skip
    upload = storage.presign_put(key, content_type, req.size_bytes, settings.upload_url_seconds)
    return voice, upload


def request_clip(
    repo: Repository, storage: Storage, user_id: UUID, voice_id: UUID, req: InstantClipRequest
) -> tuple[InstantVoiceRow, PresignedUpload]:
    """Another clip for a voice (its own row and key, probed like the first reference when
    its upload's event comes) and a PUT URL for it."""
    settings = repo.settings
    filename, ext, content_type = _checked_reference(req, settings)
    calls = InstantCalls(repo)
    voice = calls.voice(user_id, voice_id)
    clip_id = uuid4()
    key = keys.instant_reference_key(user_id, voice.profile_id, clip_id, ext)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.upload_url_seconds)
    clip = calls.add_clip(
        user_id=user_id, voice_id=voice_id, clip_id=clip_id, reference_key=key,
        filename=filename, size_bytes=req.size_bytes, consent_text=CONSENT_TEXT,
        upload_expires_at=expires_at,
    )  # fmt: skip
    upload = storage.presign_put(key, content_type, req.size_bytes, settings.upload_url_seconds)
    return clip, upload


def _checked_reference(
    req: InstantVoiceRequest | InstantClipRequest, settings: Settings
) -> tuple[str, str, str]:
    """The consent, name, format and size checks every reference clip passes: (filename,
    extension, content type)."""
    if not req.consent:
        raise PipelineError(
            "CONSENT_REQUIRED",
            "Confirm that the reference is your own voice or that you have the right to use it.",
        )
    filename = keys.check_filename(req.filename)
    ext = keys.extension_of(filename)
    content_type = check_declared_format(ext, req.content_type, settings.allowed_formats)
    check_published_format(req.filename, req.content_type, settings.allowed_formats)
    check_size(req.size_bytes, settings.max_file_bytes)
    return filename, ext, content_type


def probe_reference(repo: Repository, storage: Storage, voice_id: UUID) -> InstantVoiceRow | None:
    """Probes an uploaded reference like any upload (header first, then a sealed download and
    a bounded decode) and holds it to 10-30 s of audible, unclipped audio."""
    calls, settings = InstantCalls(repo), repo.settings
    voice = calls.voice_by_id(voice_id)
    if voice is None or voice.status != "awaiting_upload":
        return voice
    info = storage.head(voice.reference_key)
    if info is None or info.size == 0:
        return calls.record_reference(
            voice_id, "rejected", None, "CORRUPT_AUDIO", "The file is empty."
        )
    limits = HeaderLimits(
        settings.min_sample_rate, settings.max_channels, settings.max_reference_seconds
    )
    try:
        screen_head(_read_head(storage, info), info.size, limits)
        with tempfile.TemporaryDirectory(dir=settings.scratch_dir, prefix="reference-") as scratch:
            path = _fetch(storage, info, Path(scratch), settings.max_file_bytes)
            screen_file(path, limits)
            stats = measure(path, settings.max_reference_seconds)
    except (AudioError, HeaderError) as exc:
        return calls.record_reference(voice_id, "rejected", None, exc.code, exc.message)
    low = settings.min_reference_seconds if voice.clip_of is None else MIN_CLIP_SECONDS
    if stats.duration_sec < low:
        return calls.record_reference(
            voice_id, "rejected", stats.duration_sec, "TOO_SHORT",
            f"A {'reference' if voice.clip_of is None else 'clip'} needs at least {low:g} "
            f"seconds of your voice; this one has "
            f"{stats.duration_sec:.1f}.",
        )  # fmt: skip
    if stats.peak_dbfs is None or stats.loudness_lufs is None or stats.silence_ratio > SILENT_RATIO:
        return calls.record_reference(
            voice_id,
            "rejected",
            stats.duration_sec,
            "SILENT",
            "This file is silent or almost silent.",
        )
    if stats.clipping_ratio > CLIPPED_RATIO:
        return calls.record_reference(
            voice_id, "rejected", stats.duration_sec, "CLIPPED",
            "This recording is heavily clipped (distorted); record it at a lower level.",
        )  # fmt: skip
    return calls.record_reference(voice_id, "ready", stats.duration_sec)


def delete_voice(repo: Repository, storage: Storage, user_id: UUID, voice_id: UUID) -> int:
    """Deletes the voice's rows, then its reference and every input and result made with it.
    The rows' delete queued those objects (trigger `queue_instant_objects`) in the same
    transaction, so an object store that is down now only delays them to the retention
    task's next run: the voice is gone either way, and the answer says so (a 503 would send
    the person to retry a delete whose voice no longer exists)."""
    gone = InstantCalls(repo).delete_voice(user_id, voice_id)
    try:
        storage.delete_many(gone)
    except Unavailable:
        log.warning("instant voice deleted; its %d objects wait for retention", len(gone))
    return len(gone)


def request_instant(
    repo: Repository, storage: Storage, user_id: UUID, req: InstantRequest
) -> tuple[InstantJob, PresignedUpload]:
    settings = repo.settings
    filename = keys.check_filename(req.filename)
    ext = keys.extension_of(filename)
    content_type = check_declared_format(ext, req.content_type, settings.allowed_formats)
    check_published_format(req.filename, req.content_type, settings.allowed_formats)
    check_size(req.size_bytes, settings.max_conversion_bytes)
    calls = InstantCalls(repo)
    voice = calls.voice(user_id, req.voice_id)
    job_id = uuid4()
    input_key = keys.instant_input_key(user_id, voice.profile_id, job_id, ext)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.upload_url_seconds)
    row = calls.create_job(
        user_id=user_id, voice_id=req.voice_id, job_id=job_id, params=req.params.model_dump(),
        input_key=input_key, input_filename=filename, input_size_bytes=req.size_bytes,
        upload_expires_at=expires_at,
    )  # fmt: skip
    upload = storage.presign_put(
        input_key, content_type, req.size_bytes, settings.upload_url_seconds
    )
    return InstantJob.model_validate(row.model_dump()), upload
