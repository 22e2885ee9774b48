"""The long-lived clients one process needs, built once from settings."""

from dataclasses import dataclass, field
from uuid import UUID

from pipeline import redact
from pipeline.auth import TokenVerifier
from pipeline.db import Database, connect_database
from pipeline.dispatch import (
    Dispatcher,
    InlineDispatcher,
    RoutingDispatcher,
    Runner,
    SubprocessDispatcher,
    ThreadDispatcher,
)
from pipeline.events import EventHandler
from pipeline.launch import launch
from pipeline.production import Zone, require_production_ready
from pipeline.repository import Repository
from pipeline.settings import Settings, as_worker_env
from pipeline.storage import Storage
from pipeline.webhooks import WebhookKeys


@dataclass
class Services:
    """Built once per process by `build_services`; every request and job shares them."""

    settings: Settings
    db: Database
    storage: Storage
    verifier: TokenVerifier
    webhook_keys: WebhookKeys
    # The worker login (`svc_worker`) for the work this process runs itself (the probe), so
    # it needs no more than a worker container; `db` itself when no worker login is set.
    worker_db: Database
    repo: Repository = field(init=False)
    worker_repo: Repository = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    events: EventHandler = field(init=False)

    def __post_init__(self) -> None:
        self.repo = Repository(self.db, self.settings)
        self.worker_repo = Repository(self.worker_db, self.settings)

    def _event_handler(self) -> EventHandler:
        repo, dispatcher = self.repo, self.dispatcher

        def start_conversion(job_id: UUID) -> None:
            launch(repo, dispatcher, "conversion", job_id)

        def start_instant(job_id: UUID) -> None:
            launch(repo, dispatcher, "instant", job_id)

        return EventHandler(
            repo, dispatcher, on_conversion_queued=start_conversion, on_instant_queued=start_instant
        )

    def runners(self) -> dict[str, Runner]:
        from pipeline.probe import probe_dataset_file
        from pipeline.separation import request_separation
        from pipeline.singer_check import request_singer_check
        from pipeline.work_dirs import sweep_work_dirs

        def probe(file_id: UUID) -> object:
            row = probe_dataset_file(self.worker_repo, self.storage, file_id)
            request_singer_check(self.worker_repo, self.dispatcher, row)
            request_separation(self.worker_repo, self.dispatcher, row)
            return row

        def sweep_work(_user_id: UUID) -> object:
            # after an erasure: the whole volume is swept (listing it is cheap), not only
            # that person's trainings, whose rows are gone
            return sweep_work_dirs(self.repo, self.settings.work_dir)

        def probe_reference(voice_id: UUID) -> object:
            from pipeline.instant import probe_reference

            return probe_reference(self.worker_repo, self.storage, voice_id)

        return {"probe": probe, "sweep_work": sweep_work, "probe_reference": probe_reference}

    def close(self) -> None:
        routes = getattr(self.dispatcher, "routes", {})
        for dispatcher in {id(d): d for d in routes.values()}.values():
            if isinstance(dispatcher, ThreadDispatcher):
                dispatcher.shutdown()
        if self.worker_db is not self.db:
            self.worker_db.close()
        self.db.close()


def build_services(
    settings: Settings, dispatcher: Dispatcher | None = None, zone: Zone = "service"
) -> Services:
    """Refuses unsafe production settings for `zone` first (see pipeline/production.py)."""
    require_production_ready(settings, zone)
    redact.install()  # no log line of this process names a person (pipeline/redact.py)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    db = connect_database(settings)
    services = Services(
        settings=settings,
        db=db,
        worker_db=_worker_db(settings, db),
        storage=Storage(settings),
        verifier=TokenVerifier.from_settings(settings),
        webhook_keys=WebhookKeys.parse(secret, settings.webhook_public_key),
    )
    services.dispatcher = dispatcher or _dispatcher(settings, services.runners())
    services.events = services._event_handler()
    return services


def _worker_db(settings: Settings, db: Database) -> Database:
    if settings.db_transport != "postgres" or settings.worker_login_url == settings.database_url:
        return db
    return connect_database(settings, worker=True)


def _dispatcher(settings: Settings, runners: dict[str, Runner]) -> Dispatcher:
    """CPU work (the probe) in-process; torch work (train, convert, the singer check, vocal
    separation) in a worker process."""
    if settings.dispatch == "modal":
        from pipeline.dispatch_modal import ModalDispatcher

        return ModalDispatcher(settings.modal_app_name, settings.modal_environment)
    if settings.dispatch == "inline":
        local: Dispatcher = InlineDispatcher(runners)
    else:
        from pipeline.audio import warm_up

        local = ThreadDispatcher(runners)
        local.prepare(warm_up)
    gpu = SubprocessDispatcher(as_worker_env(settings))
    return RoutingDispatcher(
        {
            "probe": local,
            "probe_reference": local,
            "sweep_work": local,
            "train": gpu,
            "convert": gpu,
            "speak": gpu,
            "singers": gpu,
            "separate": gpu,
            "instant": gpu,
        }
    )
