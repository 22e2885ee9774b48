"""Small arrangements shared by tests: rows the API has no way to create directly."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from pipeline import keys
from pipeline.repository import Repository

# Every table a user owns rows in (RLS owner-select); processed_events has no owner.
USER_TABLES = [
    "voice_profiles", "dataset_files", "training_jobs", "model_versions", "conversion_jobs",
    "usage_counters", "quota_overrides", "separation_jobs", "instant_voices", "instant_jobs",
]  # fmt: skip


def ready_dataset(
    repo: Repository, user_id: UUID, profile_id: UUID, seconds: float, full_mix: bool = False
) -> UUID:
    """Registers a file and records a passing probe for it, as the probe will in production
    (for a full mix, that also queues its separation job)."""
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, "take.wav")
    repo.register_upload(
        user_id, profile_id, file_id, key, "take.wav", "audio/wav", 1000, full_mix=full_mix
    )
    repo.record_probe(
        file_id, etag="e", size_bytes=1000, probe={"duration_sec": seconds, "format": "wav"}
    )
    return file_id


def trained_profile(repo: Repository, user_id: UUID, name: str = "voice") -> dict[str, Any]:
    """A profile with a finished training and an active model version."""
    profile = repo.create_profile(user_id, name)
    ready_dataset(repo, user_id, profile.id, 200)
    job = repo.start_training(user_id, profile.id, {"preset": "tiny"})
    repo.claim_job("training", job.id)
    version = uuid4()
    repo.finish_training(
        job.id,
        version,
        keys.model_key(user_id, profile.id, version),
        keys.model_config_key(user_id, profile.id, version),
        1234,
        {"loss_g": 1.0},
    )
    return {"profile_id": profile.id, "job_id": job.id, "model_version_id": version}


def new_conversion(
    repo: Repository, user_id: UUID, profile_id: UUID, *, expires_in: float = 900, **params: Any
) -> UUID:
    """A conversion awaiting its upload, with the profile's active model."""
    job_id = uuid4()
    repo.create_conversion(
        user_id,
        profile_id,
        job_id,
        model_version_id=None,
        params=params,
        input_key=keys.conversion_input_key(user_id, profile_id, job_id, "wav"),
        input_filename="in.wav",
        input_size_bytes=100,
        upload_expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
    )
    return job_id


def instant_rows(repo: Repository, user_id: UUID, profile_id: UUID) -> UUID:
    """An instant voice marked ready (no audio) and an instant job awaiting its input."""
    from pipeline.instant import InstantCalls

    calls, voice_id, job_id = InstantCalls(repo), uuid4(), uuid4()
    calls.create_voice(
        user_id=user_id, profile_id=profile_id, voice_id=voice_id, name="instant",
        reference_key=keys.instant_reference_key(user_id, profile_id, voice_id, "wav"),
        filename="me.wav", size_bytes=1000, consent_text="mine",
        upload_expires_at=datetime.now(UTC),
    )  # fmt: skip
    calls.record_reference(voice_id, "ready", 12.0)
    calls.create_job(
        user_id=user_id, voice_id=voice_id, job_id=job_id, params={},
        input_key=keys.instant_input_key(user_id, profile_id, job_id, "wav"),
        input_filename="in.wav", input_size_bytes=1000, upload_expires_at=datetime.now(UTC),
    )  # fmt: skip
    return job_id
