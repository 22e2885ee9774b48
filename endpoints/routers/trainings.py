from uuid import UUID

from fastapi import APIRouter, status
from pydantic import BaseModel

from endpoints.deps import RepoDep, ServicesDep, UserDep, rate_limit
from pipeline.launch import cancel, launch
from schemas.jobs import ModelVersion, TrainingJob, TrainingParams
from schemas.profiles import Profile

router = APIRouter(tags=["trainings"])


@router.post(
    "/profiles/{profile_id}/trainings",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[rate_limit("job_start")],
)
def start_training(
    profile_id: UUID, user: UserDep, services: ServicesDep, body: TrainingParams | None = None
) -> TrainingJob:
    """Queues a training (dataset limits, one at a time, monthly quota) and starts a worker."""
    repo = services.repo
    params = (body or TrainingParams()).model_dump(exclude_none=True)
    job = repo.start_training(user.id, profile_id, params)
    launch(repo, services.dispatcher, "training", job.id)
    return repo.get_job("training", user.id, job.id)


@router.post("/trainings/{job_id}/cancel", dependencies=[rate_limit("cancel")])
def cancel_training(job_id: UUID, user: UserDep, services: ServicesDep) -> TrainingJob:
    cancel(services.repo, services.dispatcher, "training", user.id, job_id)
    return services.repo.get_job("training", user.id, job_id)


@router.get("/profiles/{profile_id}/models")
def list_models(profile_id: UUID, user: UserDep, repo: RepoDep) -> list[ModelVersion]:
    """Newest first; `active` marks the one conversions use by default."""
    return repo.list_model_versions(user.id, profile_id)


@router.post("/profiles/{profile_id}/models/{version_id}/activate")
def activate_model(profile_id: UUID, version_id: UUID, user: UserDep, repo: RepoDep) -> Profile:
    return repo.activate_model_version(user.id, profile_id, version_id)


class ModelDownload(BaseModel):
    model_url: str
    config_url: str
    expires_in: int


@router.get("/models/{version_id}/download")
def download_model(version_id: UUID, user: UserDep, services: ServicesDep) -> ModelDownload:
    """Short-lived links to `model.pth` and `config.json`."""
    row = services.repo.get_model_version(user.id, version_id)
    seconds = services.settings.download_url_seconds
    storage = services.storage
    return ModelDownload(
        model_url=storage.presign_get(row["model_key"], seconds, f"model-{version_id}.pth"),
        config_url=storage.presign_get(row["config_key"], seconds, f"config-{version_id}.json"),
        expires_in=seconds,
    )
