"""`DELETE /me`: a person's data, gone at once, not at the next scheduled run.

The SQL function cancels live jobs (with refunds), queues every key and deletes every row in
one transaction; then the queued objects and anything else under the user's prefix (orphans
included) are deleted here, and the training work volume is swept where it is mounted (the
`sweep_work` dispatch kind): a training's directory holds the person's raw recordings. Last,
`delete_account` forgets what still names the person (rate buckets, the deletion queue,
operator actions on the account; the event dedupe and log keep only hashes and redacted
keys, pipeline/redact.py) and deletes the account itself: its
row in `auth.users`, which is what Supabase Auth's admin delete removes too, and whose
cascade takes the usage counters, overrides and GPU spend.
"""

import logging
from uuid import UUID

from pipeline import keys, redact
from pipeline.dispatch import Dispatcher
from pipeline.errors import Unavailable
from pipeline.launch import signal_stop
from pipeline.repository import Repository
from pipeline.retention import drain_deletions
from pipeline.storage import Storage
from schemas.retention import Erasure

log = logging.getLogger(__name__)


def erase_user(
    repo: Repository, storage: Storage, dispatcher: Dispatcher, user_id: UUID
) -> Erasure:
    """Idempotent: a retry after a storage outage (a 503) finishes what the first call
    started, since the account is deleted only once every object is gone."""
    done = repo.erase_user_data(user_id)
    for call_id in done.call_ids:
        signal_stop(dispatcher, call_id)
    present = _delete_objects(repo, storage, user_id)
    try:
        dispatcher.spawn("sweep_work", user_id)
    except Exception:  # the daily retention run sweeps the volume too
        log.exception(
            "could not start the work-volume sweep after erasing %s", redact.user(user_id)
        )
    repo.delete_account(user_id)
    return Erasure(
        profiles=done.profiles,
        dataset_files=done.dataset_files,
        model_versions=done.model_versions,
        training_jobs=done.training_jobs,
        conversion_jobs=done.conversion_jobs,
        jobs_canceled=done.jobs_canceled,
        objects_deleted=present,
    )


def _delete_objects(repo: Repository, storage: Storage, user_id: UUID) -> int:
    """Every object under the person's prefix and every key queued for them; a storage
    failure is our outage, a 503 the person may retry (their rows are gone already, their
    objects stay queued and listed for the retry)."""
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = f"{keys.ROOT}/{user_id}/"
    try:
        present = [obj.key for obj in storage.list_prefix(prefix)]
        drain_deletions(repo, storage, user_id)
        gone = storage.delete_many(present)
    except (Unavailable, BotoCoreError, ClientError) as exc:
        log.warning("erasing %s: object storage failed (%s)", redact.user(user_id), exc)
        raise _unfinished() from exc
    if len(gone) < len(present) or repo.list_object_deletions(1, user_id):
        raise _unfinished()
    return len(present)


def _unfinished() -> Unavailable:
    return Unavailable(
        "Your data was removed from our database, but deleting your files did not finish. "
        "Please try again in a moment: nothing is lost by retrying.",
        {"retry_after": 10},
    )
