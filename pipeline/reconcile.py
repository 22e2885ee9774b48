"""The upload reconciler (a cron task): nothing is lost when a notification never arrives.

Pending rows older than a few minutes are checked against object storage: an object that is
there gets probed; one that never appeared after its upload URL expired is marked expired.
Conversions still awaiting their input are checked the same way: an input that is there gets
the job queued and launched, as its event would have (the reaper cancels the ones whose link
expired, `UPLOAD_EXPIRED`). Each catch is counted for operators (`ops.event_health`, source
`reconciler`).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.dispatch import Dispatcher
from pipeline.launch import launch
from pipeline.repository import Repository
from pipeline.storage import Storage


@dataclass
class ReconcileReport:
    checked: int = 0
    probed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)  # conversions whose input had arrived
    waiting: int = 0


def reconcile_uploads(
    repo: Repository, storage: Storage, dispatcher: Dispatcher, now: datetime | None = None
) -> ReconcileReport:
    settings = repo.settings
    now = now or datetime.now(UTC)
    grace = timedelta(seconds=settings.upload_url_seconds + 60)
    report = ReconcileReport()
    for row in repo.list_stale_uploads(settings.reconcile_after_seconds):
        report.checked += 1
        if storage.head(row.object_key) is not None:
            dispatcher.spawn("probe", row.id)
            report.probed.append(str(row.id))
            repo.record_event_outcome("reconciler", "probed", key=row.object_key)
        elif row.created_at + grace < now:
            repo.expire_upload(row.id)
            report.expired.append(str(row.id))
            repo.record_event_outcome("reconciler", "expired", key=row.object_key)
        else:
            report.waiting += 1
    _reconcile_conversions(repo, storage, dispatcher, report)
    return report


def _reconcile_conversions(
    repo: Repository, storage: Storage, dispatcher: Dispatcher, report: ReconcileReport
) -> None:
    for job in repo.list_stale_conversion_uploads(repo.settings.reconcile_after_seconds):
        report.checked += 1
        if storage.head(job.input_key) is None:
            report.waiting += 1
            continue
        if repo.queue_conversion(job.id).status != "queued":
            continue  # its event came meanwhile, or it was canceled
        launch(repo, dispatcher, "conversion", job.id)
        report.queued.append(str(job.id))
        repo.record_event_outcome("reconciler", "queued", key=job.input_key)
