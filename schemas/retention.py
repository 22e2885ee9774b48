"""Retention and erasure: what a pass of the rules and an erasure report back."""

from typing import Literal

from pydantic import Field

from schemas.common import Model, Request


class PurgeCounts(Model):
    """Rows deleted and object keys queued for deletion."""

    profiles: int = 0
    dataset_files: int = 0
    model_versions: int = 0
    training_jobs: int = 0
    conversion_jobs: int = 0
    objects_queued: int = 0


class RetentionPass(Model):
    """One run of `apply_retention`: keys queued per rule and deleted profiles purged."""

    dataset_objects_queued: int
    conversion_objects_queued: int
    profiles_purged: PurgeCounts


class UserErasure(PurgeCounts):
    """What `erase_user_data` did: the purge, the jobs it canceled and the workers to stop."""

    jobs_canceled: int = 0
    call_ids: list[str] = []


ERASE_CONFIRMATION = "erase my data"


class EraseRequest(Request):
    """The body of `DELETE /me`: typing the sentence is the confirmation."""

    confirm: Literal["erase my data"] = Field(
        description="Exactly `erase my data`: every profile, file, model, job and object of "
        "the signed-in account is deleted, and nothing can bring it back."
    )


class Erasure(Model):
    """`DELETE /me`'s answer. The sign-in account itself stays until Supabase deletes it."""

    profiles: int
    dataset_files: int
    model_versions: int
    training_jobs: int
    conversion_jobs: int
    jobs_canceled: int
    objects_deleted: int


class InstantExpiry(Model):
    """`expire_instant_jobs`: keys of old or abandoned instant conversions queued, and
    instant voices that never became usable (rejected, never uploaded) deleted."""

    objects_queued: int = 0
    voices_deleted: int = 0


class RetentionReport(Model):
    """One run of the scheduled retention task."""

    rules: RetentionPass
    text_jobs_expired: int = 0  # spoken lines past `conversion_retention_days`
    instant: InstantExpiry = InstantExpiry()
    objects_deleted: int
    orphans_deleted: int
