"""`/profiles/{id}/dataset`: upload, list, play and delete a profile's dataset files."""

import logging
from uuid import UUID

from fastapi import APIRouter, status

from endpoints.deps import RepoDep, ServicesDep, UserDep, rate_limit
from endpoints.links import download_link
from pipeline import redact
from pipeline.errors import NotFound, PipelineError
from pipeline.uploads import request_dataset_upload
from schemas.conversions import DownloadLink
from schemas.profiles import DatasetFile, UploadRequest, UploadTicket

log = logging.getLogger(__name__)
router = APIRouter(prefix="/profiles/{profile_id}/dataset", tags=["dataset"])


@router.post("/uploads", status_code=status.HTTP_201_CREATED, dependencies=[rate_limit("upload")])
def request_upload(
    profile_id: UUID, body: UploadRequest, user: UserDep, services: ServicesDep
) -> UploadTicket:
    """Reserves a dataset row and returns a PUT URL bound to this file's type and size."""
    return request_dataset_upload(services.repo, services.storage, user.id, profile_id, body)


@router.get("/files")
def list_files(profile_id: UUID, user: UserDep, repo: RepoDep) -> list[DatasetFile]:
    return repo.list_dataset_files(user.id, profile_id)


@router.get("/files/{file_id}/download")
def download_file(
    profile_id: UUID, file_id: UUID, user: UserDep, services: ServicesDep
) -> DownloadLink:
    """A short-lived link to a ready file, for the page's player: an upload as it was sent
    (a full mix too), or a vocal separated from one."""
    row = services.repo.get_dataset_file(file_id)
    if row is None or (row.user_id, row.profile_id) != (user.id, profile_id):
        raise NotFound("That dataset file does not exist.", {"file_id": str(file_id)})
    if row.status != "ready":
        raise PipelineError("NOT_READY", "Only a ready file can be played.", {"status": row.status})
    return download_link(services, row.object_key, row.filename)


@router.delete("/files/{file_id}")
def delete_file(
    profile_id: UUID, file_id: UUID, user: UserDep, services: ServicesDep
) -> DatasetFile:
    row = services.repo.delete_dataset_file(user.id, profile_id, file_id)
    try:
        services.storage.delete(row.object_key)
    except Exception:
        log.warning("could not delete object %s; the row is deleted", redact.key(row.object_key))
    return row
