"""The upload reconciler (a cron task): nothing is lost when a notification never arrives.

Pending rows older than a few minutes are checked against object storage: an object that is
there gets probed; one that never appeared after its upload URL expired is marked expired.
Each catch is counted for operators (`ops.event_health`, source `reconciler`).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.dispatch import Dispatcher
from pipeline.repository import Repository
from pipeline.storage import Storage


@dataclass
class ReconcileReport:
    checked: int = 0
    probed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
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
    return report
