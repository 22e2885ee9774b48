"""The scheduled retention task: the database decides what goes, this deletes the objects.

`apply_retention` (SQL) queues the keys of rejected uploads, old or abandoned conversions and
profiles past their grace period, and purges those profiles' rows (`expire_text_jobs` and
`expire_instant_jobs` do the same for spoken lines and instant conversions); this module deletes the
queued objects and acknowledges each only once it is gone, so a failed run is simply retried
by the next one; a result's encodings for download (`pipeline.encode`) go with it, in the
same request. A sweep then removes objects that no row claims (re-uploads through a link
that outlived its row, results a worker wrote after its job was erased).
"""

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pipeline import keys
from pipeline.encode import derived_keys
from pipeline.repository import Repository
from pipeline.storage import Storage
from pipeline.text import expire_text_jobs
from schemas.retention import InstantExpiry, RetentionReport

log = logging.getLogger(__name__)
MAX_ROUNDS = 100  # bounds one run; what is left waits for the next


def drain_deletions(repo: Repository, storage: Storage, user_id: UUID | None = None) -> int:
    """Deletes queued objects (one user's, when given) until the queue is empty."""
    batch = repo.settings.retention_batch
    deleted = 0
    for _ in range(MAX_ROUNDS):
        queued = repo.list_object_deletions(batch, user_id)
        if not queued:
            break
        targets = {key: derived_keys(key) for key in queued}
        gone = set(storage.delete_many(queued + [k for extra in targets.values() for k in extra]))
        acked = [key for key, extra in targets.items() if key in gone and gone.issuperset(extra)]
        deleted += repo.ack_object_deletions(acked)
        if len(acked) < len(queued):
            log.warning("%d objects not deleted; retried next run", len(queued) - len(acked))
            break
    return deleted


def sweep_orphans(repo: Repository, storage: Storage, now: datetime | None = None) -> int:
    """Deletes objects in the key layout that no row claims and that are older than the
    grace (a worker uploads a model or result a moment before it records it)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=repo.settings.orphan_grace_seconds)
    candidates: list[str] = []
    deleted = 0
    for obj in storage.list_prefix(keys.ROOT + "/"):
        if keys.parse_key(obj.key) is None:
            continue
        if obj.last_modified is not None and obj.last_modified > cutoff:
            continue
        candidates.append(obj.key)
        if len(candidates) >= repo.settings.retention_batch:
            deleted += _delete_unclaimed(repo, storage, candidates)
            candidates = []
    if candidates:
        deleted += _delete_unclaimed(repo, storage, candidates)
    return deleted


def _delete_unclaimed(repo: Repository, storage: Storage, candidates: list[str]) -> int:
    unclaimed = repo.unclaimed_object_keys(candidates)
    return len(storage.delete_many(unclaimed)) if unclaimed else 0


def expire_instant_jobs(repo: Repository) -> InstantExpiry:
    """Queues old instant conversions' files (the conversions' retention) and drops instant
    voices that never became usable; a usable voice's reference stays while the voice does."""
    seconds = repo.settings.conversion_retention_days * 86400
    return InstantExpiry.model_validate(repo.db.call("expire_instant_jobs", retention_sec=seconds))


def run_retention(repo: Repository, storage: Storage) -> RetentionReport:
    rules = repo.apply_retention()
    texts = expire_text_jobs(repo)  # queues old spoken lines' files like old conversions'
    instant = expire_instant_jobs(repo)
    objects = drain_deletions(repo, storage)
    orphans = sweep_orphans(repo, storage)
    report = RetentionReport(
        rules=rules,
        text_jobs_expired=texts,
        instant=instant,
        objects_deleted=objects,
        orphans_deleted=orphans,
    )
    log.info("retention: %s", report.model_dump())
    return report
