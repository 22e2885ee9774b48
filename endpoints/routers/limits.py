"""`/limits`: the deployment's limits, public."""

from fastapi import APIRouter

from endpoints.deps import PublicRateLimit, ServicesDep
from schemas.limits import Limits

router = APIRouter(tags=["limits"])


@router.get("/limits", dependencies=[PublicRateLimit])
def limits(services: ServicesDep) -> Limits:
    """Unauthenticated: the deployment's limits (the same for everyone; per-user quota
    overrides show in `/quota`)."""
    return Limits.model_validate(services.settings)  # read by attribute, secrets untouched
