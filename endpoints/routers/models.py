"""`/profiles/{id}/models` and `/models/{version}`: a profile's trained model versions, their
downloads and their quality previews."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from endpoints.deps import RepoDep, ServicesDep, UserDep
from endpoints.downloads import format_key
from pipeline import keys
from pipeline.errors import NotFound
from schemas.downloads import FORMAT_HELP, DownloadFormat
from schemas.jobs import ModelDownload, ModelVersion
from schemas.profiles import Profile
from schemas.quality import ModelPreview

router = APIRouter(tags=["models"])


@router.get("/profiles/{profile_id}/models")
def list_models(
    profile_id: UUID, user: UserDep, repo: RepoDep, limit: int = Query(50, ge=1, le=200)
) -> list[ModelVersion]:
    """Newest first, at most `limit`; `active` marks the one conversions use by default."""
    return repo.list_model_versions(user.id, profile_id, limit)


@router.post("/profiles/{profile_id}/models/{version_id}/activate")
def activate_model(profile_id: UUID, version_id: UUID, user: UserDep, repo: RepoDep) -> Profile:
    return repo.activate_model_version(user.id, profile_id, version_id)


@router.get("/models/{version_id}/download")
def download_model(version_id: UUID, user: UserDep, services: ServicesDep) -> ModelDownload:
    """Short-lived links to `model.pth` and `config.json`."""
    row = services.repo.get_model_version(user.id, version_id)
    seconds = services.settings.download_url_seconds
    storage = services.storage
    return ModelDownload(
        model_url=storage.presign_get(row.model_key, seconds, f"model-{version_id}.pth"),
        config_url=storage.presign_get(row.config_key, seconds, f"config-{version_id}.json"),
        expires_in=seconds,
    )


@router.get("/models/{version_id}/preview")
def preview_model(
    version_id: UUID,
    user: UserDep,
    services: ServicesDep,
    format: Annotated[DownloadFormat | None, Query(description=FORMAT_HELP)] = None,
) -> ModelPreview:
    """Short-lived links to the preview the quality report was measured on: a held-out
    original and this model's conversion of it. 404 when the version has none (trained
    before reports existed, or its report could not be made)."""
    row = services.repo.get_model_version(user.id, version_id)
    storage = services.storage
    found = {
        side: keys.model_preview_key(row.user_id, row.profile_id, row.id, side)
        for side in ("original", "converted")
    }
    if any(storage.head(key) is None for key in found.values()):
        raise NotFound("This model version has no preview.", {"model_version_id": str(row.id)})
    seconds = services.settings.download_url_seconds
    quality = row.metrics.get("quality") or {}
    return ModelPreview(
        original_url=storage.presign_get(
            format_key(services, found["original"], format, "Preview (held-out original)"),
            seconds,
        ),
        converted_url=storage.presign_get(
            format_key(services, found["converted"], format, "Preview (converted)"), seconds
        ),
        seconds=quality.get("preview_seconds"),
        expires_in=seconds,
    )
