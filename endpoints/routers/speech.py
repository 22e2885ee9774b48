"""`/profiles/{id}/speech` and `/speech/{id}`: type a line, hear it in your voice.

Starting one checks the text (length, control characters, language) and reserves a unit of the
day's quota; the job is queued at once (there is nothing to upload) and a worker launched. The
shared job routes list, watch and cancel it; the download answers a short-lived link to the MP3
(the default) or the WAV, both 44.1 kHz.
"""

from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, Query, status

from endpoints.deps import ServicesDep, UserDep, rate_limit
from endpoints.job_routes import JobResource, add_job_routes
from endpoints.links import download_link
from endpoints.openapi import may_answer
from pipeline.errors import PipelineError
from pipeline.text import request_text
from schemas.conversions import DownloadLink
from schemas.text import TextFormat, TextJob, TextJobRow, TextRequest

router = APIRouter(tags=["speech"])


def start_speech(
    profile_id: UUID, body: TextRequest, user: UserDep, services: ServicesDep
) -> TextJob:
    """Speaks `text` in the voice (the profile's active model unless another is named): at
    most `VC_TEXT_MAX_CHARS` characters, no control characters, in a language the engine
    speaks; 422 otherwise. The report of the finished job says how close the result sounds to
    the voice and to the text-to-speech voice it started from, and which one that was."""
    return request_text(services.repo, services.dispatcher, user.id, profile_id, body)


router.add_api_route(
    "/profiles/{profile_id}/speech",
    may_answer(start_speech, 409, 429),
    methods=["POST"],
    status_code=status.HTTP_201_CREATED,
    response_model=TextJob,
    dependencies=[rate_limit("job_start")],
    name="start_speech",
)
add_job_routes(router, JobResource("text", TextJob, plural="speech"))


def download_speech(
    job_id: UUID,
    user: UserDep,
    services: ServicesDep,
    format: Annotated[TextFormat, Query(description="`mp3` (the default) or `wav`")] = "mp3",
) -> DownloadLink:
    job = cast(TextJobRow, services.repo.get_job_row("text", user.id, job_id))
    if job.files_removed_at:
        days = services.settings.conversion_retention_days
        raise PipelineError(
            "FILES_EXPIRED",
            f"This line's files were deleted: results are kept for {days} days.",
            {"files_removed_at": job.files_removed_at.isoformat()},
        )
    key = job.mp3_key if format == "mp3" else job.output_key
    if job.status != "succeeded" or not key:
        raise PipelineError(
            "NOT_READY", "The line has not been spoken yet.", {"status": job.status}
        )
    return download_link(services, key, f"speech-{str(job_id)[:8]}.{format}")


router.add_api_route(
    "/speech/{job_id}/download",
    may_answer(download_speech, 409),
    methods=["GET"],
    response_model=DownloadLink,
    name="download_speech",
)
