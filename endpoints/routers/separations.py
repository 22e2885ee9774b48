"""`/profiles/{id}/separations` and `/separations/{id}`: watch, cancel and retry the
separation of full-mix dataset files (first started by the probe, never by a request)."""

from uuid import UUID

from fastapi import APIRouter, Query

from endpoints.deps import RepoDep, ServicesDep, UserDep, rate_limit
from pipeline.launch import cancel
from pipeline.separation import retry_separation
from schemas.jobs import SeparationJob

router = APIRouter(tags=["separations"])


@router.get("/profiles/{profile_id}/separations")
def list_separations(
    profile_id: UUID, user: UserDep, repo: RepoDep, limit: int = Query(50, ge=1, le=200)
) -> list[SeparationJob]:
    repo.get_profile(user.id, profile_id)
    return repo.list_jobs("separation", user.id, profile_id, limit)


@router.get("/separations/{job_id}")
def get_separation(job_id: UUID, user: UserDep, repo: RepoDep) -> SeparationJob:
    return repo.get_job("separation", user.id, job_id)


@router.post("/separations/{job_id}/cancel", dependencies=[rate_limit("cancel")])
def cancel_separation(job_id: UUID, user: UserDep, services: ServicesDep) -> SeparationJob:
    """Stops a separation; its song stays in the dataset (it never trains) and no vocal is
    added until it is tried again."""
    cancel(services.repo, services.dispatcher, "separation", user.id, job_id)
    return services.repo.get_job("separation", user.id, job_id)


@router.post("/separations/{job_id}/retry", dependencies=[rate_limit("job_start")])
def retry(job_id: UUID, user: UserDep, services: ServicesDep) -> SeparationJob:
    """Separates a song again after a failure or a cancel (its song must still be ready, and
    the GPU budget not spent); a separation still in flight is left as it is."""
    retry_separation(services.repo, services.dispatcher, user.id, job_id)
    return services.repo.get_job("separation", user.id, job_id)
