"""Starting GPU work for a job row that has just committed.

If the spawn fails, the job fails at once with its quota refunded; otherwise the call id is
stored on the row so a cancel can reach the worker. The row stays the source of truth
(docs/architecture.md, "GPU work: claim, heartbeat, cancel, resume").
"""

import logging
from uuid import UUID

from pipeline.dispatch import Dispatcher
from pipeline.errors import Unavailable
from pipeline.repository import Repository
from schemas.jobs import JobKind, JobRow

log = logging.getLogger(__name__)
WORKER_KIND: dict[JobKind, str] = {
    "training": "train",
    "conversion": "convert",
    "separation": "separate",
    "instant": "instant",
    "text": "speak",
}


def launch(repo: Repository, dispatcher: Dispatcher, kind: JobKind, job_id: UUID) -> None:
    try:
        call_id = dispatcher.spawn(WORKER_KIND[kind], job_id)
    except Exception as exc:
        log.exception("could not start %s %s", kind, job_id)
        message = "The job could not be started. Your quota was refunded; please try again."
        repo.fail_job(kind, job_id, "DISPATCH_FAILED", message)
        raise Unavailable("The job could not be started. Please try again.") from exc
    repo.set_job_call_id(kind, job_id, call_id)


def cancel(
    repo: Repository, dispatcher: Dispatcher, kind: JobKind, user_id: UUID, job_id: UUID
) -> JobRow:
    """Cancels in SQL first (refund, final state); then asks the worker to stop, best effort:
    a worker that misses the signal sees the canceled row at its next heartbeat."""
    row = repo.cancel_job(kind, user_id, job_id)
    if row.status == "canceled" and row.worker_call_id:
        signal_stop(dispatcher, row.worker_call_id)
    return row


def signal_stop(dispatcher: Dispatcher, call_id: str) -> None:
    """Asks a worker to stop, best effort: the row is already final in SQL, and a worker that
    misses the signal sees it at its next heartbeat."""
    try:
        dispatcher.cancel(call_id)
    except Exception:
        log.warning("could not signal worker %s; it stops at its next heartbeat", call_id)
