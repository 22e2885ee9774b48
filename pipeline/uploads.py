"""Dataset uploads: the row is reserved first, then a PUT URL is signed for exactly that
object, type and length. The bytes go straight from the browser to the object store."""

from uuid import UUID, uuid4

from pipeline import keys
from pipeline.formats import check_declared_format, check_published_format, check_size
from pipeline.repository import Repository
from pipeline.storage import Storage
from schemas.profiles import UploadRequest, UploadTicket


def request_dataset_upload(
    repo: Repository, storage: Storage, user_id: UUID, profile_id: UUID, req: UploadRequest
) -> UploadTicket:
    settings = repo.settings
    filename = keys.check_filename(req.filename)
    content_type = check_declared_format(
        keys.extension_of(filename), req.content_type, settings.allowed_formats
    )
    check_published_format(req.filename, req.content_type, settings.allowed_formats)
    check_size(req.size_bytes, settings.max_file_bytes)
    file_id = uuid4()
    object_key = keys.dataset_key(user_id, profile_id, file_id, filename)
    repo.register_upload(
        user_id,
        profile_id,
        file_id,
        object_key,
        filename,
        content_type,
        req.size_bytes,
        full_mix=req.full_mix,
    )
    signed = storage.presign_put(
        object_key, content_type, req.size_bytes, settings.upload_url_seconds
    )
    return UploadTicket(
        file_id=file_id,
        object_key=object_key,
        upload_url=signed.url,
        headers=signed.headers,
        expires_at=signed.expires_at,
    )
