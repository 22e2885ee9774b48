"""The scheduled tasks, as plain functions of the services; Modal's scheduled functions and
the local stack call them the same way."""

import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pipeline.errors import Unavailable
from pipeline.launch import launch
from pipeline.production import require_production_ready
from pipeline.queue_pull import CloudflareQueue, consume_once
from pipeline.reconcile import reconcile_uploads
from pipeline.retention import run_retention
from pipeline.services import Services
from pipeline.work_dirs import sweep_work_dirs

log = logging.getLogger(__name__)


def reset_quotas(services: Services, now: datetime | None = None) -> dict[str, int]:
    """Rolls usage counters into the current UTC day/month (a late run is harmless) and drops
    rate-limit buckets idle for a day (they would be full again anyway)."""
    rolled = services.repo.reset_quota_periods(now)
    return rolled | {"rate_buckets_pruned": services.repo.prune_rate_buckets()}


def reap(services: Services) -> list[dict[str, Any]]:
    """Publishes the default GPU budget (a changed `VC_GPU_SECONDS_PER_MONTH` reaches the
    workers' heartbeats within a tick); fails silent or never-started jobs and expires
    un-uploaded conversions, with refunds; then starts the jobs an operator requeued
    (`ops.requeue_job`), which nothing else would, and the separations waiting in line for a
    slot. A requeued job's wait counts from its requeue (`queued_at`), so reaping first cannot
    fail it before it starts."""
    services.repo.publish_gpu_budget()
    reaped = services.repo.reap_stale_jobs()
    launch_requeued(services)
    return reaped


def launch_requeued(services: Services) -> list[str]:
    """Launches each requeued job once, as the API launches a new one (a failed spawn fails
    the job with its quota refunded), and each queued job whose spawn never came, then each
    separation waiting in line while its person has a free slot (`take_separation` decides,
    as for the probe's first launch)."""
    repo = services.repo
    taken = list(repo.take_requeued_jobs())
    # A row committed whose spawn never came (the API killed between the two): launched once
    # it has waited longer than a launch takes, instead of failing NOT_STARTED hours later.
    taken += repo.take_unlaunched_jobs(repo.settings.unlaunched_after_seconds)
    for file_id in repo.waiting_separations():
        take = repo.take_separation(file_id)
        if take.taken and take.job is not None:
            taken.append(("separation", take.job.id))
    launched = []
    for kind, job_id in taken:
        try:
            launch(repo, services.dispatcher, kind, job_id)
        except Unavailable:
            continue
        launched.append(str(job_id))
    if launched:
        log.info("launched %d requeued jobs", len(launched))
    return launched


def reconcile(services: Services) -> dict[str, Any]:
    report = reconcile_uploads(services.repo, services.storage, services.dispatcher)
    return asdict(report)


def retention(services: Services) -> dict[str, Any]:
    """Deletes what is no longer needed: rejected uploads, old and abandoned conversions,
    spoken lines and instant conversions, instant voices that never became usable,
    deleted profiles past their grace period, orphaned objects (rules in SQL), and training
    work dirs no job may use any more (run where the work volume is mounted)."""
    report = run_retention(services.repo, services.storage).model_dump()
    return report | {"work_dirs": sweep_work(services)}


def sweep_work(services: Services) -> dict[str, int]:
    """The training work volume swept (`pipeline.work_dirs`): after erasures and daily."""
    return sweep_work_dirs(services.repo, services.settings.work_dir).model_dump()


def pull_queue(services: Services, max_rounds: int = 10) -> dict[str, int]:
    """Drains the Cloudflare Queue (the pull path); does nothing when it is not configured."""
    settings = services.settings
    require_production_ready(settings, "queue")
    if not (settings.cf_account_id and settings.cf_queue_id and settings.cf_api_token):
        return {"pulled": 0}
    queue = CloudflareQueue.from_settings(settings)
    totals = {"pulled": 0, "acked": 0, "retried": 0, "invalid": 0}
    handler = services.events
    for _ in range(max_rounds):
        report = consume_once(queue, handler.handle)
        for key in totals:
            totals[key] += getattr(report, key)
        if report.pulled == 0:
            break
    return totals
