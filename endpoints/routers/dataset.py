"""`/profiles/{id}/dataset`: upload, list and delete a profile's dataset files."""

import logging
from uuid import UUID

from fastapi import APIRouter, status

from endpoints.deps import RepoDep, ServicesDep, UserDep, rate_limit
from pipeline.uploads import request_dataset_upload
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


@router.delete("/files/{file_id}")
def delete_file(
    profile_id: UUID, file_id: UUID, user: UserDep, services: ServicesDep
) -> DatasetFile:
    row = services.repo.delete_dataset_file(user.id, profile_id, file_id)
    try:
        services.storage.delete(row.object_key)
    except Exception:
        log.warning("could not delete object %s; the row is deleted", row.object_key)
    return row
