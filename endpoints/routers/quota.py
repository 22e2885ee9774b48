"""`/quota`: what the signed-in user may still do this period."""

from fastapi import APIRouter

from endpoints.deps import RepoDep, UserDep
from schemas.quota import Quota

router = APIRouter(tags=["quota"])


@router.get("/quota")
def get_quota(user: UserDep, repo: RepoDep) -> Quota:
    """Used, limit, remaining and reset time of every counted quota (`quotas`: trainings a
    month; conversions, instant conversions and spoken lines a day; any later kind's), the
    first two also at the top as before, and the month's GPU budget."""
    return repo.quota_status(user.id)
