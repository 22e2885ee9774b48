"""Starting the separation of a full-mix dataset file once the probe found it ready
(`python -m gpu separate <job_id>` locally, the `separate` Modal function in production).
Torch-free: the separation itself runs in `gpu.separation.job`.

`record_probe` created the job in the same transaction that made the mix ready; here it is
taken (exactly once, however often the probe's event is delivered) and launched. A launch
that never happens is picked up by the reaper's cron (`take_requeued_jobs`), and a spawn that
fails fails the job at once (`pipeline.launch`).
"""

import logging
from uuid import UUID

from pipeline.dispatch import Dispatcher
from pipeline.errors import Unavailable
from pipeline.launch import launch
from pipeline.repository import Repository
from schemas.jobs import SeparationJobRow
from schemas.profiles import DatasetFile

log = logging.getLogger(__name__)


def request_separation(
    repo: Repository, dispatcher: Dispatcher, row: DatasetFile | None
) -> SeparationJobRow | None:
    """The mix's separation job, launched if this caller took it; None for any other file."""
    if row is None or not row.full_mix or row.status != "ready":
        return None
    return launch_separation(repo, dispatcher, row.id)


def launch_separation(
    repo: Repository, dispatcher: Dispatcher, file_id: UUID
) -> SeparationJobRow | None:
    """Takes the mix's queued separation and launches it; a job taken already (by another
    delivery) is left to whoever took it."""
    take = repo.take_separation(file_id)
    if take.taken and take.job is not None:
        try:
            launch(repo, dispatcher, "separation", take.job.id)
        except Unavailable:
            log.warning("could not start the separation of %s; its job failed", file_id)
    return take.job


def retry_separation(
    repo: Repository, dispatcher: Dispatcher, user_id: UUID, job_id: UUID
) -> SeparationJobRow | None:
    """The person's "try again": queued anew in SQL, then launched as the first time."""
    job = repo.retry_separation(user_id, job_id)
    if job.status != "queued":
        return job
    return launch_separation(repo, dispatcher, job.source_file_id)
