"""Text in a voice, the server's side: a request checked (text, language) and started as a
queued job, its worker launched; the worker's calls (`text_voice`, `finish_text`); the
result's keys. The rules are SQL's (supabase/schemas/68_text.sql); the checks on the text
are repeated here first so a bad line is refused with a precise message before anything is
reserved.
"""

from uuid import UUID, uuid4

from pipeline.dispatch import Dispatcher
from pipeline.errors import PipelineError
from pipeline.launch import launch
from pipeline.repository import Repository
from schemas.text import (
    TextJob,
    TextJobRow,
    TextProblem,
    TextReport,
    TextRequest,
    TextVoiceRow,
    check_language,
    check_text,
)


def checked(req: TextRequest, max_chars: int, engine: str) -> tuple[str, str]:
    """The text as it will be spoken and the language tag; 422 in the one error shape."""
    try:
        return check_text(req.text, max_chars), check_language(req.language, engine)
    except TextProblem as problem:
        raise PipelineError("INVALID_ARGUMENT", problem.message, problem.details) from problem


def request_text(
    repo: Repository, dispatcher: Dispatcher, user_id: UUID, profile_id: UUID, req: TextRequest
) -> TextJob:
    s = repo.settings
    text, language = checked(req, s.text_max_chars, s.text_engine)
    row = repo.db.call(
        "start_text",
        user_id=user_id,
        profile_id=profile_id,
        job_id=uuid4(),
        voice_kind=req.voice.kind,
        model_version_id=req.voice.model_version_id,
        instant_voice_id=req.voice.instant_voice_id,
        text=text,
        language=language,
        params=req.options.model_dump(),
        max_chars=s.text_max_chars,
        default_limit=s.texts_per_day,
        max_active=s.max_active_texts,
        gpu_seconds_per_month=s.gpu_seconds_per_month,
    )
    job = TextJob.model_validate(row)
    launch(repo, dispatcher, "text", job.id)
    return repo.get_job("text", user_id, job.id)  # type: ignore[return-value]


def text_voice(repo: Repository, job_id: UUID) -> TextVoiceRow:
    return TextVoiceRow.model_validate(repo.db.call("text_voice", job_id=job_id))


def finish_text(
    repo: Repository,
    job_id: UUID,
    output_key: str,
    mp3_key: str,
    output_seconds: float,
    report: TextReport,
    attempt: int | None = None,
) -> TextJobRow:
    """Charges the GPU time since the last heartbeat (the uploads) and records the report."""
    row = repo.db.call(
        "finish_text",
        job_id=job_id,
        output_key=output_key,
        mp3_key=mp3_key,
        output_seconds=output_seconds,
        report=report.model_dump(),
        attempt=attempt,
    )
    return TextJobRow.model_validate(row)


def expire_text_jobs(repo: Repository) -> int:
    """Retention: queues the files of text jobs past `conversion_retention_days`."""
    seconds = repo.settings.conversion_retention_days * 86400
    return int(repo.db.call("expire_text_jobs", retention_sec=seconds))
