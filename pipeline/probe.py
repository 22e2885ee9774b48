"""The probe: measure an uploaded dataset file and record a verdict a person understands.

Transient trouble (the object store or database unreachable) raises and records nothing, so
the event is retried; only a judgement about the audio itself is ever recorded.
"""

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from pipeline.audio import AudioError, AudioStats, measure
from pipeline.audio_header import (
    HEADER_BYTES,
    HeaderError,
    HeaderLimits,
    screen_file,
    screen_head,
)
from pipeline.errors import Unavailable
from pipeline.formats import too_large_message
from pipeline.grading import grade
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import ObjectChanged, ObjectInfo, Storage
from schemas.profiles import DatasetFile

SILENT_RATIO = 0.95
CLIPPED_RATIO = 0.01


@dataclass(frozen=True)
class Verdict:
    probe: dict[str, Any]
    reject_code: str | None = None
    reject_message: str | None = None


def _rejected(stats: AudioStats, settings: Settings) -> tuple[str, str] | None:
    """The first rule the measured file breaks; only what makes a file unusable: it is
    silent, too clipped to learn a voice from, or outside the rate, channel and length
    limits. How clean or voice-like it sounds is graded (`pipeline.grading`), never a reason
    to refuse it. Too long is not here: `measure` stops decoding and refuses the file as soon
    as it passes the limit."""
    checks = [
        (stats.channels > settings.max_channels, "TOO_MANY_CHANNELS",
         f"This file has {stats.channels} channels; use a mono or stereo vocal."),
        (stats.sample_rate < settings.min_sample_rate, "LOW_SAMPLE_RATE",
         f"{stats.sample_rate} Hz is too low for singing; use at least "
         f"{settings.min_sample_rate} Hz."),
        (stats.duration_sec < settings.min_dataset_file_seconds, "TOO_SHORT",
         f"This clip is shorter than {settings.min_dataset_file_seconds:g} seconds."),
        (stats.clipping_ratio > CLIPPED_RATIO, "CLIPPED",
         "This recording is heavily clipped (distorted); export it at a lower level."),
        (stats.peak_dbfs is None or stats.loudness_lufs is None
         or stats.silence_ratio > SILENT_RATIO, "SILENT",
         "This file is silent or almost silent."),
    ]  # fmt: skip
    return next(((code, msg) for failed, code, msg in checks if failed), None)


def assess(stats: AudioStats, settings: Settings) -> Verdict:
    grading = grade(stats)
    probe = asdict(stats) | {
        "noise_level": grading.noise_level,
        "warnings": [w.model_dump() for w in grading.warnings],
        "quality_grade": grading.grade,
        "quality_notes": grading.notes,
    }
    rejection = _rejected(stats, settings)
    if rejection:
        return Verdict(probe, *rejection)
    return Verdict(probe)


def _fetch(storage: Storage, info: ObjectInfo, directory: Path, max_bytes: int) -> Path:
    """Exactly the object that was HEADed (If-Match on its eTag), never more than the limit;
    one replaced meanwhile is fetched again when its own event comes."""
    from botocore.exceptions import BotoCoreError, ClientError

    path = directory / "object"
    try:
        storage.download_sealed(info.key, path, info.etag, max_bytes)
    except ObjectChanged as exc:
        raise Unavailable("The upload changed while it was being checked.") from exc
    except (BotoCoreError, ClientError, OSError) as exc:
        raise Unavailable("Could not fetch the upload from object storage.") from exc
    return path


def _read_head(storage: Storage, info: ObjectInfo) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return storage.read_head(info.key, min(HEADER_BYTES, info.size), info.etag)
    except ObjectChanged as exc:
        raise Unavailable("The upload changed while it was being checked.") from exc
    except (BotoCoreError, ClientError, OSError) as exc:
        raise Unavailable("Could not fetch the upload from object storage.") from exc


def probe_dataset_file(repo: Repository, storage: Storage, file_id: UUID) -> DatasetFile | None:
    """Probes a pending file and records the verdict; anything else is left as it is."""
    settings = repo.settings
    row = repo.get_dataset_file(file_id)
    if row is None or row.status != "pending":
        return row
    info = storage.head(row.object_key)
    if info is None:
        raise Unavailable("The upload is not in object storage yet.", {"file_id": str(file_id)})
    if info.size > settings.max_file_bytes:
        return repo.record_probe(
            file_id,
            etag=info.etag,
            size_bytes=info.size,
            probe={},
            reject_code="TOO_LARGE",
            reject_message=too_large_message(settings.max_file_bytes),
        )
    if info.size == 0:
        return repo.record_probe(
            file_id,
            etag=info.etag,
            size_bytes=None,
            probe={},
            reject_code="CORRUPT_AUDIO",
            reject_message="The file is empty.",
        )
    started = repo.begin_probe(file_id)  # counts the attempt; past the limit: PROBE_FAILED
    if started is None or started.status != "pending":
        return started
    try:
        # The header's claims are judged from its first bytes, before a download or a decoder
        # can be sized by them; then the decoder's own reading of the header, then the decode.
        limits = HeaderLimits.for_dataset(settings)
        screen_head(_read_head(storage, info), info.size, limits)
        with tempfile.TemporaryDirectory(dir=settings.scratch_dir, prefix="probe-") as scratch:
            path = _fetch(storage, info, Path(scratch), settings.max_file_bytes)
            screen_file(path, limits)
            verdict = assess(measure(path, settings.max_dataset_file_seconds), settings)
    except (AudioError, HeaderError) as exc:
        verdict = Verdict({}, exc.code, exc.message)
    return repo.record_probe(
        file_id,
        etag=info.etag,
        size_bytes=info.size,
        probe=verdict.probe,
        reject_code=verdict.reject_code,
        reject_message=verdict.reject_message,
    )
