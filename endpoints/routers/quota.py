"""`/quota`: what the signed-in user may still do this period."""

from fastapi import APIRouter

from endpoints.deps import RepoDep, UserDep
from schemas.quota import Quota

router = APIRouter(tags=["quota"])


@router.get("/quota")
def get_quota(user: UserDep, repo: RepoDep) -> Quota:
    """Used, limit, remaining and reset time for trainings (month) and conversions (day)."""
    return repo.quota_status(user.id)
