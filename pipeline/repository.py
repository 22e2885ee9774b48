"""Typed calls to the SQL functions, with the limits from settings passed in.

Each method is one database round trip; the rules themselves are in the migrations.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from pipeline import redact
from pipeline.db import Database
from pipeline.settings import Settings
from schemas.instant import InstantJob, InstantJobRow
from schemas.jobs import (
    ConversionJob,
    ConversionJobRow,
    JobKind,
    JobRow,
    ModelVersion,
    ModelVersionRow,
    SeparationJob,
    SeparationJobRow,
    SeparationTake,
    TrainingInput,
    TrainingJob,
    TrainingJobRow,
)
from schemas.pitch import PitchAdvice, PitchRange
from schemas.profiles import DatasetFile, Profile, ProfileDetail, SingerCheckFile
from schemas.quota import Quota, RateDecision
from schemas.retention import RetentionPass, UserErasure
from schemas.text import TextJob, TextJobRow

# What a client sees of a job, and the whole row the server and the workers read.
JobModel = TrainingJob | ConversionJob | SeparationJob | InstantJob | TextJob
JOB_MODELS: dict[JobKind, type[JobModel]] = {
    "training": TrainingJob,
    "conversion": ConversionJob,
    "separation": SeparationJob,
    "instant": InstantJob,
    "text": TextJob,
}
JOB_ROWS: dict[JobKind, type[JobRow | InstantJobRow | TextJobRow]] = {
    "training": TrainingJobRow,
    "conversion": ConversionJobRow,
    "separation": SeparationJobRow,
    "instant": InstantJobRow,
    "text": TextJobRow,
}


def _job_row(kind: JobKind, row: dict[str, Any]) -> JobRow:
    return JOB_ROWS[kind].model_validate(row)


class Repository:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    # Profiles
    def create_profile(self, user_id: UUID, name: str) -> Profile:
        row = self.db.call(
            "create_profile", user_id=user_id, name=name, max_profiles=self.settings.max_profiles
        )
        return Profile.model_validate(row)

    def list_profiles(self, user_id: UUID) -> list[Profile]:
        return [Profile.model_validate(r) for r in self.db.call("list_profiles", user_id=user_id)]

    def get_profile(self, user_id: UUID, profile_id: UUID) -> ProfileDetail:
        row = self.db.call("get_profile", user_id=user_id, profile_id=profile_id)
        return ProfileDetail.model_validate(row)

    def delete_profile(self, user_id: UUID, profile_id: UUID) -> Profile:
        return self.delete_profile_and_jobs(user_id, profile_id)[0]

    def delete_profile_and_jobs(self, user_id: UUID, profile_id: UUID) -> tuple[Profile, list[str]]:
        """Deletes the profile, canceling every live job on it (of every kind); returns it
        and the worker call ids of the canceled jobs, for the caller to signal."""
        row = self.db.call("delete_profile", user_id=user_id, profile_id=profile_id)
        return Profile.model_validate(row), [str(c) for c in row.get("call_ids") or []]

    # Dataset
    def register_upload(
        self,
        user_id: UUID,
        profile_id: UUID,
        file_id: UUID,
        object_key: str,
        filename: str,
        content_type: str,
        size_bytes: int,
        full_mix: bool = False,
    ) -> DatasetFile:
        row = self.db.call(
            "register_upload",
            user_id=user_id,
            profile_id=profile_id,
            file_id=file_id,
            object_key=object_key,
            filename=filename,
            content_type=content_type,
            size_bytes=size_bytes,
            max_files=self.settings.max_dataset_files,
            full_mix=full_mix,
        )
        return DatasetFile.model_validate(row)

    def list_dataset_files(
        self, user_id: UUID, profile_id: UUID, rejected_limit: int = 20
    ) -> list[DatasetFile]:
        """Pending and ready files (at most the file cap), then the latest refusals."""
        rows = self.db.call(
            "list_dataset_files",
            user_id=user_id,
            profile_id=profile_id,
            max_files=self.settings.max_dataset_files,
            rejected_limit=rejected_limit,
        )
        return [DatasetFile.model_validate(r) for r in rows]

    def delete_dataset_file(self, user_id: UUID, profile_id: UUID, file_id: UUID) -> DatasetFile:
        """The deleted row, object key included, so the caller can remove the object."""
        row = self.db.call(
            "delete_dataset_file",
            user_id=user_id,
            profile_id=profile_id,
            file_id=file_id,
            min_similarity=self.settings.singer_min_similarity,
        )
        return DatasetFile.model_validate(row)

    def record_probe(
        self,
        file_id: UUID,
        *,
        etag: str | None,
        size_bytes: int | None,
        probe: dict[str, Any],
        reject_code: str | None = None,
        reject_message: str | None = None,
    ) -> DatasetFile:
        row = self.db.call(
            "record_probe",
            file_id=file_id,
            etag=etag,
            size_bytes=size_bytes,
            probe=probe,
            reject_code=reject_code,
            reject_message=reject_message,
            max_total_seconds=self.settings.max_dataset_seconds,
        )
        return DatasetFile.model_validate(row)

    def singer_check_files(self, profile_id: UUID) -> list[SingerCheckFile]:
        """Ready files of a profile that have no speaker embedding yet."""
        rows = self.db.call("singer_check_files", profile_id=profile_id)
        return [SingerCheckFile.model_validate(r) for r in rows]

    def record_singer_embedding(self, file_id: UUID, embedding: list[float]) -> DatasetFile:
        """Stores a file's speaker embedding; SQL recomputes the profile's singer check."""
        row = self.db.call(
            "record_singer_embedding",
            file_id=file_id,
            embedding=embedding,
            min_similarity=self.settings.singer_min_similarity,
        )
        return DatasetFile.model_validate(row)

    def request_singer_check(self, profile_id: UUID) -> bool:
        """True when the caller must spawn the profile's singer-check worker: none is pending
        or running. One running is marked to run once more instead."""
        return bool(
            self.db.call(
                "request_singer_check",
                profile_id=profile_id,
                stale_seconds=self.settings.singer_check_stale_seconds,
            )
        )

    def begin_singer_check(self, profile_id: UUID) -> None:
        self.db.call("begin_singer_check", profile_id=profile_id)

    def finish_singer_check(self, profile_id: UUID, *, failed: bool = False) -> bool:
        """True when the check was asked for again while it ran: the worker runs once more."""
        return bool(self.db.call("finish_singer_check", profile_id=profile_id, failed=failed))

    def get_dataset_file(self, file_id: UUID) -> DatasetFile | None:
        """Any user's file, by id: for the trusted event path, which checks ownership itself."""
        row = self.db.call("get_dataset_file", file_id=file_id)
        return DatasetFile.model_validate(row) if row else None

    def mark_object_deleted(self, object_key: str) -> int:
        """The live row of a deleted object becomes deleted; its profile's singer check is
        recomputed without it."""
        row = self.db.call(
            "mark_object_deleted",
            object_key=object_key,
            min_similarity=self.settings.singer_min_similarity,
        )
        return int(row["deleted"])

    def list_stale_uploads(self, older_than_seconds: int, limit: int = 500) -> list[DatasetFile]:
        rows = self.db.call("list_stale_uploads", older_than_sec=older_than_seconds, limit=limit)
        return [DatasetFile.model_validate(r) for r in rows]

    def list_stale_conversion_uploads(
        self, older_than_seconds: int, limit: int = 500
    ) -> list[ConversionJobRow]:
        """Conversions still awaiting their input (their link not expired yet)."""
        rows = self.db.call(
            "list_stale_conversion_uploads", older_than_sec=older_than_seconds, limit=limit
        )
        return [ConversionJobRow.model_validate(r) for r in rows]

    def begin_probe(self, file_id: UUID) -> DatasetFile | None:
        """Counts a probe attempt on a pending file; past the limit the row comes back
        rejected with PROBE_FAILED, so a file whose probe keeps crashing is not retried forever."""
        row = self.db.call(
            "begin_probe", file_id=file_id, max_attempts=self.settings.max_probe_attempts
        )
        return DatasetFile.model_validate(row) if row else None

    def take_rate_token(
        self, subject: str, action: str, burst: int, per_minute: float
    ) -> RateDecision:
        row = self.db.call(
            "take_rate_token", subject=subject, action=action, burst=burst, per_minute=per_minute
        )
        return RateDecision.model_validate(row)

    def prune_rate_buckets(self, older_than_seconds: int = 86400) -> int:
        row = self.db.call("prune_rate_buckets", older_than_sec=older_than_seconds)
        return int(row["deleted"])

    def expire_upload(self, file_id: UUID) -> DatasetFile | None:
        row = self.db.call("expire_upload", file_id=file_id)
        return DatasetFile.model_validate(row) if row else None

    # Jobs
    def get_job_by_id(self, kind: JobKind, job_id: UUID) -> JobRow | None:
        """Any user's job, by id: for workers and the event path."""
        row = self.db.call("get_job_by_id", kind=kind, job_id=job_id)
        return _job_row(kind, row) if row else None

    def get_job(self, kind: JobKind, user_id: UUID, job_id: UUID) -> JobModel:
        return JOB_MODELS[kind].model_validate(self.get_job_row(kind, user_id, job_id))

    def get_job_row(self, kind: JobKind, user_id: UUID, job_id: UUID) -> JobRow:
        """The whole row (object keys included) of the caller's job; NOT_FOUND otherwise."""
        return _job_row(kind, self.db.call("get_job", kind=kind, user_id=user_id, job_id=job_id))

    def list_jobs(
        self, kind: JobKind, user_id: UUID, profile_id: UUID | None = None, limit: int = 50
    ) -> list[JobModel]:
        rows = self.db.call(
            "list_jobs", kind=kind, user_id=user_id, profile_id=profile_id, limit=limit
        )
        return [JOB_MODELS[kind].model_validate(r) for r in rows]

    def start_training(
        self, user_id: UUID, profile_id: UUID, params: dict[str, Any]
    ) -> TrainingJob:
        s = self.settings
        row = self.db.call(
            "start_training",
            user_id=user_id,
            profile_id=profile_id,
            params=params,
            min_seconds=s.min_dataset_seconds,
            max_seconds=s.max_dataset_seconds,
            default_limit=s.trainings_per_month,
            max_active=s.max_active_trainings,
            gpu_seconds_per_month=s.gpu_seconds_per_month,
        )
        return TrainingJob.model_validate(row)

    def create_conversion(
        self,
        user_id: UUID,
        profile_id: UUID,
        job_id: UUID,
        *,
        model_version_id: UUID | None,
        params: dict[str, Any],
        input_key: str,
        input_filename: str,
        input_size_bytes: int,
        upload_expires_at: datetime,
    ) -> ConversionJob:
        s = self.settings
        row = self.db.call(
            "create_conversion",
            user_id=user_id,
            profile_id=profile_id,
            job_id=job_id,
            model_version_id=model_version_id,
            params=params,
            input_key=input_key,
            input_filename=input_filename,
            input_size_bytes=input_size_bytes,
            upload_expires_at=upload_expires_at,
            default_limit=s.conversions_per_day,
            max_active=s.max_active_conversions,
            gpu_seconds_per_month=s.gpu_seconds_per_month,
        )
        return ConversionJob.model_validate(row)

    def claim_job(self, kind: JobKind, job_id: UUID) -> JobRow:
        return _job_row(kind, self.db.call("claim_job", kind=kind, job_id=job_id))

    def heartbeat_job(
        self, kind: JobKind, job_id: UUID, progress: dict[str, Any], attempt: int | None = None
    ) -> JobRow:
        """Charges the GPU time since the last heartbeat; the row comes back `failed` with
        GPU_BUDGET_EXHAUSTED once the user's monthly budget is spent. The budget is the
        server's (the user's override, else the default `publish_gpu_budget` stored): the
        worker sends none. `attempt` (what the claim returned) fences an old worker out:
        STALE_ATTEMPT once a retried worker has claimed the job."""
        row = self.db.call(
            "heartbeat_job", kind=kind, job_id=job_id, progress=progress, attempt=attempt
        )
        return _job_row(kind, row)

    def set_job_call_id(self, kind: JobKind, job_id: UUID, call_id: str) -> JobRow:
        row = self.db.call("set_job_call_id", kind=kind, job_id=job_id, call_id=call_id)
        return _job_row(kind, row)

    def fail_job(
        self, kind: JobKind, job_id: UUID, code: str, message: str, attempt: int | None = None
    ) -> JobRow:
        """Ends the job with a readable code, charging and refunding as the rules say; a
        worker passes its `attempt` (no attempt: the service's own failure, e.g. a launch)."""
        row = self.db.call(
            "fail_job",
            kind=kind,
            job_id=job_id,
            error_code=code,
            error_message=message,
            attempt=attempt,
        )
        return _job_row(kind, row)

    def cancel_job(self, kind: JobKind, user_id: UUID, job_id: UUID) -> JobRow:
        row = self.db.call("cancel_job", kind=kind, user_id=user_id, job_id=job_id)
        return _job_row(kind, row)

    def finish_training(
        self,
        job_id: UUID,
        model_version_id: UUID,
        model_key: str,
        config_key: str,
        size_bytes: int,
        metrics: dict[str, Any],
        attempt: int | None = None,
    ) -> TrainingJobRow:
        """The model version, made active; charges the GPU time since the last heartbeat."""
        row = self.db.call(
            "finish_training",
            job_id=job_id,
            model_version_id=model_version_id,
            model_key=model_key,
            config_key=config_key,
            size_bytes=size_bytes,
            metrics=metrics,
            attempt=attempt,
        )
        return TrainingJobRow.model_validate(row)

    def record_training_pitch(self, job_id: UUID, pitch_range: PitchRange | None) -> None:
        """The training audio's range; the model version the job finishes with takes it."""
        payload = pitch_range.model_dump() if pitch_range else None
        self.db.call("record_training_pitch", job_id=job_id, pitch_range=payload)

    def record_conversion_pitch(self, job_id: UUID, pitch: PitchAdvice) -> None:
        self.db.call("record_conversion_pitch", job_id=job_id, pitch=pitch.model_dump())

    def training_inputs(self, job_id: UUID) -> list[TrainingInput]:
        """The ready dataset files a training job trains on."""
        rows = self.db.call("training_inputs", job_id=job_id)
        return [TrainingInput.model_validate(r) for r in rows]

    def conversion_model(self, job_id: UUID) -> ModelVersionRow:
        """The model version a conversion job converts with (keys included), by job alone:
        what the worker login may read, where `get_model_version` is owner-checked."""
        return ModelVersionRow.model_validate(self.db.call("conversion_model", job_id=job_id))

    def list_model_versions(
        self, user_id: UUID, profile_id: UUID, limit: int = 50
    ) -> list[ModelVersion]:
        rows = self.db.call(
            "list_model_versions", user_id=user_id, profile_id=profile_id, limit=limit
        )
        return [ModelVersion.model_validate(r) for r in rows]

    def get_model_version(self, user_id: UUID, model_version_id: UUID) -> ModelVersionRow:
        """The row with its keys, for a download; owner-checked."""
        row = self.db.call("get_model_version", user_id=user_id, model_version_id=model_version_id)
        return ModelVersionRow.model_validate(row)

    def activate_model_version(
        self, user_id: UUID, profile_id: UUID, model_version_id: UUID
    ) -> Profile:
        row = self.db.call(
            "activate_model_version",
            user_id=user_id,
            profile_id=profile_id,
            model_version_id=model_version_id,
        )
        return Profile.model_validate(row)

    def queue_conversion(self, job_id: UUID) -> ConversionJobRow:
        return ConversionJobRow.model_validate(self.db.call("queue_conversion", job_id=job_id))

    def finish_conversion(
        self,
        job_id: UUID,
        output_key: str,
        input_duration_sec: float,
        attempt: int | None = None,
    ) -> ConversionJobRow:
        """Charges the GPU time since the last heartbeat (the output's upload)."""
        row = self.db.call(
            "finish_conversion",
            job_id=job_id,
            output_key=output_key,
            input_duration_sec=input_duration_sec,
            attempt=attempt,
        )
        return ConversionJobRow.model_validate(row)

    # Separation of full-mix dataset files
    def take_separation(self, file_id: UUID) -> SeparationTake:
        """A ready mix's queued separation, handed out once for launching; failed with
        GPU_BUDGET_EXHAUSTED instead when the user's budget is spent."""
        row = self.db.call(
            "take_separation",
            file_id=file_id,
            max_active=self.settings.max_active_separations,
        )
        return SeparationTake.model_validate(row)

    def retry_separation(self, user_id: UUID, job_id: UUID) -> SeparationJobRow:
        """A failed or canceled separation queued anew, to be taken and launched again."""
        row = self.db.call(
            "retry_separation",
            user_id=user_id,
            job_id=job_id,
            gpu_seconds_per_month=self.settings.gpu_seconds_per_month,
            max_active=self.settings.max_active_separations,
        )
        return SeparationJobRow.model_validate(row)

    def separation_source(self, job_id: UUID) -> DatasetFile:
        """The mix a separation job reads, by job alone (the worker login's lookup)."""
        return DatasetFile.model_validate(self.db.call("separation_source", job_id=job_id))

    def register_separated_vocal(
        self, job_id: UUID, object_key: str, filename: str, size_bytes: int
    ) -> DatasetFile | None:
        """The vocal's pending dataset row, registered before its upload so the upload's
        event probes it; None when the job is no longer running (canceled, mix deleted)."""
        row = self.db.call(
            "register_separated_vocal",
            job_id=job_id,
            object_key=object_key,
            filename=filename,
            size_bytes=size_bytes,
        )
        return DatasetFile.model_validate(row) if row else None

    def finish_separation(self, job_id: UUID, attempt: int | None = None) -> SeparationJobRow:
        row = self.db.call("finish_separation", job_id=job_id, attempt=attempt)
        return SeparationJobRow.model_validate(row)

    # Quotas and maintenance
    def quota_status(self, user_id: UUID) -> Quota:
        row = self.db.call(
            "quota_status",
            user_id=user_id,
            limits=self.settings.quota_limits,
            gpu_seconds_per_month=self.settings.gpu_seconds_per_month,
        )
        return Quota.model_validate(row)

    def reset_quota_periods(self, now: datetime | None = None) -> dict[str, int]:
        args = {"now": now} if now else {}
        return self.db.call("reset_quota_periods", **args)

    def reap_stale_jobs(self) -> list[dict[str, Any]]:
        return self.db.call(
            "reap_stale_jobs",
            heartbeat_timeout_sec=self.settings.heartbeat_timeout_seconds,
            queued_timeout_sec=self.settings.queued_timeout_seconds,
        )

    def publish_gpu_budget(self) -> None:
        """Stores this service's default monthly GPU budget in the database, where the
        heartbeat (called by the worker login, which is not trusted with it) reads it."""
        self.db.call("set_gpu_budget", gpu_seconds_per_month=self.settings.gpu_seconds_per_month)

    def take_requeued_jobs(self, limit: int = 50) -> list[tuple[JobKind, UUID]]:
        """Jobs an operator requeued (ops.requeue_job), each handed out once, to launch."""
        rows = self.db.call("take_requeued_jobs", limit=limit)
        return [(r["kind"], UUID(r["id"])) for r in rows]

    def take_unlaunched_jobs(
        self, older_than_seconds: int, limit: int = 50
    ) -> list[tuple[JobKind, UUID]]:
        """Queued jobs whose worker was never spawned (the API died between committing the
        row and the spawn), queued longer than `older_than_seconds`, each handed out once."""
        rows = self.db.call("take_unlaunched_jobs", older_than_sec=older_than_seconds, limit=limit)
        return [(r["kind"], UUID(r["id"])) for r in rows]

    def training_work_to_keep(self, job_ids: list[UUID], grace_seconds: int) -> set[UUID]:
        """Of these trainings, those whose work dir may stay (live, or budget-stopped within
        the grace period)."""
        ids = [str(i) for i in job_ids]
        rows = self.db.call("training_work_to_keep", job_ids=ids, grace_seconds=grace_seconds)
        return {UUID(r) for r in rows}

    def waiting_separations(self, limit: int = 50) -> list[UUID]:
        """The mixes whose separations wait in line for one of their person's slots."""
        return [UUID(f) for f in self.db.call("waiting_separations", limit=limit)]

    # Operators' controls and records
    def require_enabled_user(self, user_id: UUID) -> None:
        """Raises USER_DISABLED (403, with the operator's reason) for a disabled account."""
        self.db.call("require_enabled_user", user_id=user_id)

    def record_event_outcome(
        self, source: str, outcome: str, reason: str | None = None, key: str | None = None
    ) -> None:
        """Counts one event outcome per UTC day, for the `ops.event_health` view; the last key
        is kept as `redact.key` writes it (kind and row id), never the key itself."""
        last = redact.key(key) if key is not None else None
        self.db.call(
            "record_event_outcome", source=source, outcome=outcome, reason=reason, key=last
        )

    def event_seen(self, source: str, event_id: str) -> bool:
        """Ids are stored and looked up as their hash: an R2 event's id holds its object key,
        which names the user and the file (`processed_events` outlives the person)."""
        seen = self.db.call("event_seen", source=source, event_id=redact.digest(event_id))
        return bool(seen["seen"])

    def record_event(self, source: str, event_id: str) -> bool:
        new = self.db.call("record_event", source=source, event_id=redact.digest(event_id))
        return bool(new["new"])

    # Retention and erasure
    def apply_retention(self) -> RetentionPass:
        s = self.settings
        row = self.db.call(
            "apply_retention",
            conversion_retention_sec=s.conversion_retention_days * 86400,
            profile_grace_sec=s.deleted_profile_grace_days * 86400,
        )
        return RetentionPass.model_validate(row)

    def erase_user_data(self, user_id: UUID) -> UserErasure:
        return UserErasure.model_validate(self.db.call("erase_user_data", user_id=user_id))

    def delete_account(self, user_id: UUID) -> dict[str, Any]:
        """The last step of an erasure: what still names the person, then the account."""
        return self.db.call("delete_account", user_id=user_id)

    def list_object_deletions(self, limit: int, user_id: UUID | None = None) -> list[str]:
        return self.db.call("list_object_deletions", limit=limit, user_id=user_id)

    def ack_object_deletions(self, object_keys: list[str]) -> int:
        return int(self.db.call("ack_object_deletions", keys=object_keys)["acked"])

    def unclaimed_object_keys(self, object_keys: list[str]) -> list[str]:
        return self.db.call("unclaimed_object_keys", keys=object_keys)
