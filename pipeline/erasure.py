"""`DELETE /me`: a person's data, gone at once, not at the next scheduled run.

The SQL function cancels live jobs (with refunds), queues every key and deletes every row in
one transaction; then the queued objects and anything else under the user's prefix (orphans
included) are deleted here, and the training work volume is swept where it is mounted (the
`sweep_work` dispatch kind): a training's directory holds the person's raw recordings. The
sign-in account stays: Supabase deletes auth users, and its cascade takes the usage counters
and quota overrides kept until then.
"""

import logging
from uuid import UUID

from pipeline import keys
from pipeline.dispatch import Dispatcher
from pipeline.launch import signal_stop
from pipeline.repository import Repository
from pipeline.retention import drain_deletions
from pipeline.storage import Storage
from schemas.retention import Erasure

log = logging.getLogger(__name__)


def erase_user(
    repo: Repository, storage: Storage, dispatcher: Dispatcher, user_id: UUID
) -> Erasure:
    done = repo.erase_user_data(user_id)
    for call_id in done.call_ids:
        signal_stop(dispatcher, call_id)
    prefix = f"{keys.ROOT}/{user_id}/"
    present = [obj.key for obj in storage.list_prefix(prefix)]
    drain_deletions(repo, storage, user_id)
    storage.delete_many(present)
    try:
        dispatcher.spawn("sweep_work", user_id)
    except Exception:  # the daily retention run sweeps the volume too
        log.exception("could not start the work-volume sweep after erasing %s", user_id)
    return Erasure(
        profiles=done.profiles,
        dataset_files=done.dataset_files,
        model_versions=done.model_versions,
        training_jobs=done.training_jobs,
        conversion_jobs=done.conversion_jobs,
        jobs_canceled=done.jobs_canceled,
        objects_deleted=len(present),
    )
