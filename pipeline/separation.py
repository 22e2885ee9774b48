"""Starting the separation of a full-mix dataset file once the probe found it ready
(`python -m gpu separate <job_id>` locally, the `separate` Modal function in production).
Torch-free: the separation itself runs in `gpu.separation_job`.

`record_probe` created the job in the same transaction that made the mix ready; here it is
taken (exactly once, however often the probe's event is delivered) and launched. A launch
that never happens is picked up by the reaper's cron (`take_requeued_jobs`), and a spawn that
fails fails the job at once (`pipeline.launch`).
"""

import logging

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
    take = repo.take_separation(row.id)
    if take.taken and take.job is not None:
        try:
            launch(repo, dispatcher, "separation", take.job.id)
        except Unavailable:
            log.warning("could not start the separation of %s; its job failed", row.id)
    return take.job
