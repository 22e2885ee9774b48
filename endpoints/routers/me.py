"""`/me`: the signed-in person's own account data."""

from fastapi import APIRouter

from endpoints.deps import ServicesDep, UserDep
from pipeline.erasure import erase_user
from schemas.retention import EraseRequest, Erasure

router = APIRouter(prefix="/me", tags=["me"])


@router.delete("")
def erase_my_data(body: EraseRequest, user: UserDep, services: ServicesDep) -> Erasure:
    """Erases every profile, dataset file, model, job and stored object of the caller, at
    once and for good (live jobs are canceled first). The sign-in account is left for
    Supabase to delete; until then usage counters stay, so erasing does not reset a quota."""
    return erase_user(services.repo, services.storage, services.dispatcher, user.id)
