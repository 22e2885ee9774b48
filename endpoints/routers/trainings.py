"""`/profiles/{id}/trainings` and `/trainings/{id}`: start, watch and cancel trainings."""

from uuid import UUID

from fastapi import APIRouter, status

from endpoints.deps import ServicesDep, UserDep, rate_limit
from endpoints.job_routes import JobResource, add_job_routes
from pipeline.launch import launch
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


add_job_routes(router, JobResource("training", TrainingJob))
