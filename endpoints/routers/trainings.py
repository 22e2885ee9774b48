"""`/profiles/{id}/trainings` and `/trainings/{id}`: start, watch and cancel trainings."""

from uuid import UUID

from fastapi import APIRouter, Query, status

from endpoints.deps import RepoDep, ServicesDep, UserDep, rate_limit
from pipeline.launch import cancel, launch
from schemas.jobs import TrainingJob, TrainingParams

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


@router.get("/profiles/{profile_id}/trainings")
def list_trainings(
    profile_id: UUID, user: UserDep, repo: RepoDep, limit: int = Query(50, ge=1, le=200)
) -> list[TrainingJob]:
    repo.get_profile(user.id, profile_id)
    return repo.list_jobs("training", user.id, profile_id, limit)


@router.get("/trainings/{job_id}")
def get_training(job_id: UUID, user: UserDep, repo: RepoDep) -> TrainingJob:
    return repo.get_job("training", user.id, job_id)


@router.post("/trainings/{job_id}/cancel", dependencies=[rate_limit("cancel")])
def cancel_training(job_id: UUID, user: UserDep, services: ServicesDep) -> TrainingJob:
    cancel(services.repo, services.dispatcher, "training", user.id, job_id)
    return services.repo.get_job("training", user.id, job_id)
