"""Requesting a conversion: the job row (quota reserved, one at a time, a ready model) first,
then a PUT URL for exactly that input. Its upload event queues the job and starts a worker."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from pipeline import keys
from pipeline.formats import check_declared_format, check_published_format, check_size
from pipeline.repository import Repository
from pipeline.storage import PresignedUpload, Storage
from schemas.conversions import ConversionRequest
from schemas.jobs import ConversionJob


def request_conversion(
    repo: Repository, storage: Storage, user_id: UUID, profile_id: UUID, req: ConversionRequest
) -> tuple[ConversionJob, PresignedUpload]:
    settings = repo.settings
    filename = keys.check_filename(req.filename)
    ext = keys.extension_of(filename)
    content_type = check_declared_format(ext, req.content_type, settings.allowed_formats)
    check_published_format(req.filename, req.content_type, settings.allowed_formats)
    check_size(req.size_bytes, settings.max_conversion_bytes)
    job_id = uuid4()
    input_key = keys.conversion_input_key(user_id, profile_id, job_id, ext)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.upload_url_seconds)
    job = repo.create_conversion(
        user_id,
        profile_id,
        job_id,
        model_version_id=req.model_version_id,
        params=req.params.model_dump(),
        input_key=input_key,
        input_filename=filename,
        input_size_bytes=req.size_bytes,
        upload_expires_at=expires_at,
    )
    upload = storage.presign_put(
        input_key, content_type, req.size_bytes, settings.upload_url_seconds
    )
    return job, upload
