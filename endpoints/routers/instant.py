"""Instant voice: `/profiles/{id}/instant/voices` (a named 10-30 s reference, with consent),
`/instant/voices/{id}` (its `/clips` add or remove more of the same voice), and
`/instant/jobs` conversions with one (Seed-VC, no training): watch, cancel, download (the
input too, for the page's before/after player). Created like conversions: the row first, then
where to PUT the audio; the upload's event probes a reference or starts a conversion."""

from pathlib import PurePosixPath
from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from endpoints.deps import RepoDep, ServicesDep, UserDep, rate_limit
from endpoints.downloads import result_link
from endpoints.job_routes import JobResource, JobRoute, add_job_routes
from endpoints.links import download_link, upload_ticket
from endpoints.routers.conversions import SONG_PART_NAMES
from pipeline import keys
from pipeline.errors import NotFound, PipelineError
from pipeline.instant import (
    InstantCalls,
    delete_voice,
    request_clip,
    request_instant,
    request_voice,
)
from schemas.conversions import DownloadLink
from schemas.downloads import FORMAT_HELP, DownloadFormat
from schemas.instant import (
    InstantClip,
    InstantClipRequest,
    InstantClipTicket,
    InstantJob,
    InstantJobRow,
    InstantParams,
    InstantRequest,
    InstantTicket,
    InstantVoice,
    InstantVoiceRequest,
    InstantVoiceTicket,
)
from schemas.jobs import ConversionPart

router = APIRouter(tags=["instant"])


@router.post(
    "/profiles/{profile_id}/instant/voices",
    status_code=status.HTTP_201_CREATED,
    dependencies=[rate_limit("upload")],
)
def create_instant_voice(
    profile_id: UUID, body: InstantVoiceRequest, user: UserDep, services: ServicesDep
) -> InstantVoiceTicket:
    """Stores the consent and returns where to PUT the reference; its upload is probed."""
    voice, upload = request_voice(services.repo, services.storage, user.id, profile_id, body)
    ticket = upload_ticket(upload)
    return InstantVoiceTicket(voice=InstantVoice.model_validate(voice.model_dump()), upload=ticket)


@router.get("/profiles/{profile_id}/instant/voices")
def list_instant_voices(profile_id: UUID, user: UserDep, repo: RepoDep) -> list[InstantVoice]:
    repo.get_profile(user.id, profile_id)
    rows = InstantCalls(repo).voices(user.id, profile_id)
    return [InstantVoice.model_validate(r.model_dump()) for r in rows]


@router.get("/instant/voices/{voice_id}")
def get_instant_voice(voice_id: UUID, user: UserDep, repo: RepoDep) -> InstantVoice:
    return InstantVoice.model_validate(InstantCalls(repo).voice(user.id, voice_id).model_dump())


@router.delete(
    "/instant/voices/{voice_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[rate_limit("cancel")],
)
def delete_instant_voice(voice_id: UUID, user: UserDep, services: ServicesDep) -> Response:
    """Deletes the voice, its reference and every conversion made with it, audio included."""
    delete_voice(services.repo, services.storage, user.id, voice_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/instant/voices/{voice_id}/clips",
    status_code=status.HTTP_201_CREATED,
    dependencies=[rate_limit("upload")],
)
def add_instant_clip(
    voice_id: UUID, body: InstantClipRequest, user: UserDep, services: ServicesDep
) -> InstantClipTicket:
    """Another clip of the voice, confirmed again, and where to PUT it; its upload is probed
    like the first reference. The model hears the ready clips joined, up to 25 s."""
    clip, upload = request_clip(services.repo, services.storage, user.id, voice_id, body)
    ticket = upload_ticket(upload)
    return InstantClipTicket(clip=InstantClip.model_validate(clip.model_dump()), upload=ticket)


@router.delete(
    "/instant/voices/{voice_id}/clips/{clip_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[rate_limit("cancel")],
)
def delete_instant_clip(
    voice_id: UUID, clip_id: UUID, user: UserDep, services: ServicesDep
) -> Response:
    """Deletes one added clip and its audio (the first reference goes only with the voice)."""
    voice = InstantCalls(services.repo).voice(user.id, voice_id)
    if all(clip.id != clip_id for clip in voice.clips):
        raise NotFound("That clip is not one of this voice's.", {"clip_id": str(clip_id)})
    delete_voice(services.repo, services.storage, user.id, clip_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/instant/jobs", status_code=status.HTTP_201_CREATED, dependencies=[rate_limit("job_start")]
)
def create_instant(body: InstantRequest, user: UserDep, services: ServicesDep) -> InstantTicket:
    """Reserves today's instant quota and returns where to PUT the input; its upload starts it."""
    job, upload = request_instant(services.repo, services.storage, user.id, body)
    ticket = upload_ticket(upload)
    return InstantTicket(job=job, upload=ticket)


# Listed, read and canceled as every job kind is (endpoints/job_routes.py); the collection is
# `instant/jobs`, beside the voices under `instant/voices`.
add_job_routes(
    router,
    JobResource(
        "instant",
        InstantJob,
        listing=JobRoute(name="list_instant_jobs"),
        get=JobRoute(name="get_instant_job"),
        cancel=JobRoute(name="cancel_instant_job"),
        plural="instant/jobs",
    ),
)


@router.get("/instant/jobs/{job_id}/download")
def download_instant(
    job_id: UUID,
    user: UserDep,
    services: ServicesDep,
    part: Annotated[ConversionPart | None, Query()] = None,
    format: Annotated[DownloadFormat | None, Query(description=FORMAT_HELP)] = None,
) -> DownloadLink:
    """The converted audio (a song's `mix`, `vocal` or `instrumental`), once it has
    succeeded, as stored or in the format asked for."""
    job = cast(InstantJobRow, services.repo.get_job_row("instant", user.id, job_id))
    if job.files_removed_at:
        raise PipelineError("FILES_EXPIRED", "This conversion's files were deleted.")
    song = InstantParams.model_validate(job.params).input_kind == "song"
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
        return result_link(services, job.output_key, f"{stem}-instant", format, f"{stem} (instant)")
    part = part or "mix"
    key = keys.instant_part_key(job.user_id, job.profile_id, job.id, part)
    name = SONG_PART_NAMES[part]
    return result_link(services, key, f"{stem}-instant-{name}", format, f"{stem} (instant {name})")


@router.get("/instant/jobs/{job_id}/input")
def download_instant_input(job_id: UUID, user: UserDep, services: ServicesDep) -> DownloadLink:
    """The uploaded input as it came, so the page can play it against the result (A/B)."""
    job = cast(InstantJobRow, services.repo.get_job_row("instant", user.id, job_id))
    if job.files_removed_at:
        raise PipelineError("FILES_EXPIRED", "This conversion's files were deleted.")
    if job.status == "awaiting_upload" or services.storage.head(job.input_key) is None:
        raise PipelineError("NOT_READY", "The input has not been uploaded.", {"status": job.status})
    return download_link(services, job.input_key, job.input_filename or "input")
