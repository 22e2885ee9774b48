"""`/profiles/{id}/separations` and `/separations/{id}`: watch, cancel and retry the
separation of full-mix dataset files (first started by the probe, never by a request)."""

from uuid import UUID

from fastapi import APIRouter

from endpoints.job_routes import JobResource, JobRoute, add_job_routes
from pipeline.separation import retry_separation
from pipeline.services import Services
from schemas.jobs import SeparationJob

router = APIRouter(tags=["separations"])


def _retry(services: Services, user_id: UUID, job_id: UUID) -> None:
    retry_separation(services.repo, services.dispatcher, user_id, job_id)


CANCEL = """Stops a separation; its song stays in the dataset (it never trains) and no vocal is
added until it is tried again."""
RETRY = """Separates a song again after a failure or a cancel (its song must still be ready, and
the GPU budget not spent); a separation still in flight is left as it is."""
# `retry` keeps the operation name it was published with (its operation id and summary).
add_job_routes(
    router,
    JobResource(
        "separation",
        SeparationJob,
        cancel=JobRoute(description=CANCEL),
        retry=JobRoute(_retry, RETRY, name="retry"),
    ),
)
