"""`/me`: the signed-in person's own account data."""

from fastapi import APIRouter

from endpoints.deps import ServicesDep, SignedInDep
from pipeline.erasure import erase_user
from schemas.retention import EraseRequest, Erasure

router = APIRouter(prefix="/me", tags=["me"])


@router.delete("")
def erase_my_data(body: EraseRequest, user: SignedInDep, services: ServicesDep) -> Erasure:
    """Erases every profile, dataset file, model, job and stored object of the caller, at
    once and for good (live jobs are canceled first), then the account itself. A disabled
    account may erase too. A storage outage midway is a 503: retrying finishes the job."""
    return erase_user(services.repo, services.storage, services.dispatcher, user.id)
