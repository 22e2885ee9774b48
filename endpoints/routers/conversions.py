"""`/profiles/{id}/conversions` and `/conversions/{id}`: convert a stem or a song, watch,
download."""

from pathlib import PurePosixPath
from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, Query, status

from endpoints.deps import ServicesDep, UserDep, rate_limit
from endpoints.downloads import result_link
from endpoints.job_routes import JobResource, add_job_routes
from endpoints.links import download_link, upload_ticket
from pipeline import keys
from pipeline.conversions import request_conversion
from pipeline.errors import NotFound, PipelineError
from pipeline.services import Services
from schemas.conversions import ConversionRequest, ConversionTicket, DownloadLink
from schemas.downloads import FORMAT_HELP, DownloadFormat
from schemas.jobs import ConversionJob, ConversionJobRow, ConversionParams, ConversionPart

router = APIRouter(tags=["conversions"])
PART_HELP = (
    "A song conversion's `mix` (the default), converted `vocal` or `instrumental`; "
    "a vocal conversion has one result, its converted `vocal` (the default)."
)
SONG_PART_NAMES = {"mix": "cover", "vocal": "cover-vocal", "instrumental": "instrumental"}


@router.post(
    "/profiles/{profile_id}/conversions",
    status_code=status.HTTP_201_CREATED,
    dependencies=[rate_limit("job_start")],
)
def create_conversion(
    profile_id: UUID, body: ConversionRequest, user: UserDep, services: ServicesDep
) -> ConversionTicket:
    """Reserves today's quota and returns where to PUT the input; its upload starts the job."""
    job, upload = request_conversion(services.repo, services.storage, user.id, profile_id, body)
    ticket = upload_ticket(upload)
    return ConversionTicket(job=job, upload=ticket)


# Listed, read and canceled as every job kind is; its downloads are its own.
add_job_routes(router, JobResource("conversion", ConversionJob))


@router.get("/conversions/{job_id}/download")
def download_output(
    job_id: UUID,
    user: UserDep,
    services: ServicesDep,
    part: Annotated[ConversionPart | None, Query(description=PART_HELP)] = None,
    format: Annotated[DownloadFormat | None, Query(description=FORMAT_HELP)] = None,
) -> DownloadLink:
    """The converted audio (or one of a song's three), once the job has succeeded, as stored
    or in the format asked for (titled after the input)."""
    job = _job(services, user.id, job_id)
    song = ConversionParams.model_validate(job.params).input_kind == "song"
    if not song and part not in {None, "vocal"}:
        raise NotFound(
            f"This conversion converted a vocal alone: it has no {part}.", {"part": part}
        )
    if job.status != "succeeded" or not job.output_key:
        raise PipelineError(
            "NOT_READY", "The conversion has not finished yet.", {"status": job.status}
        )
    stem = PurePosixPath(job.input_filename or "audio").stem
    if not song:
        return result_link(
            services, job.output_key, f"{stem}-converted", format, f"{stem} (converted)"
        )
    part = part or "mix"
    key = keys.conversion_part_key(job.user_id, job.profile_id, job.id, part)
    name = SONG_PART_NAMES[part]
    return result_link(
        services, key, f"{stem}-{name}", format, f"{stem} ({name.replace('-', ' ')})"
    )


@router.get("/conversions/{job_id}/input")
def download_input(job_id: UUID, user: UserDep, services: ServicesDep) -> DownloadLink:
    """The original upload, for listening before and after."""
    job = _job(services, user.id, job_id)
    if job.status == "awaiting_upload" or services.storage.head(job.input_key) is None:
        raise PipelineError("NOT_READY", "The input has not been uploaded.", {"status": job.status})
    return download_link(services, job.input_key, job.input_filename or "input")


def _job(services: Services, user_id: UUID, job_id: UUID) -> ConversionJobRow:
    job = cast(ConversionJobRow, services.repo.get_job_row("conversion", user_id, job_id))
    if job.files_removed_at:
        days = services.settings.conversion_retention_days
        raise PipelineError(
            "FILES_EXPIRED",
            f"This conversion's files were deleted: results are kept for {days} days.",
            {"files_removed_at": job.files_removed_at.isoformat()},
        )
    return job
