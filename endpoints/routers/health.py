"""`/health`: whether the database and the bucket answer."""

from fastapi import APIRouter

from endpoints.deps import PublicRateLimit, ServicesDep
from schemas.health import Health

router = APIRouter(tags=["health"])


@router.get("/health", dependencies=[PublicRateLimit])
def health(services: ServicesDep) -> Health:
    """Unauthenticated: says whether the database and the bucket answer, without details."""
    try:
        database = bool(services.db.call("health")["ok"])
    except Exception:
        database = False
    try:
        storage = services.storage.ping()
    except Exception:
        storage = False
    healthy = database and storage
    return Health(status="ok" if healthy else "degraded", database=database, storage=storage)
