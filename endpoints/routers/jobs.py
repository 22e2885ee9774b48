from uuid import UUID

from fastapi import APIRouter, Query

from endpoints.deps import RepoDep, UserDep
from schemas.jobs import ConversionJob, TrainingJob

router = APIRouter(tags=["jobs"])
Limit = Query(50, ge=1, le=200)


@router.get("/trainings/{job_id}")
def get_training(job_id: UUID, user: UserDep, repo: RepoDep) -> TrainingJob:
    return repo.get_job("training", user.id, job_id)


@router.get("/profiles/{profile_id}/trainings")
def list_trainings(
    profile_id: UUID, user: UserDep, repo: RepoDep, limit: int = Limit
) -> list[TrainingJob]:
    repo.get_profile(user.id, profile_id)
    return repo.list_jobs("training", user.id, profile_id, limit)


@router.get("/conversions/{job_id}")
def get_conversion(job_id: UUID, user: UserDep, repo: RepoDep) -> ConversionJob:
    return repo.get_job("conversion", user.id, job_id)


@router.get("/profiles/{profile_id}/conversions")
def list_conversions(
    profile_id: UUID, user: UserDep, repo: RepoDep, limit: int = Limit
) -> list[ConversionJob]:
    repo.get_profile(user.id, profile_id)
    return repo.list_jobs("conversion", user.id, profile_id, limit)
