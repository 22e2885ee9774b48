"""The long-lived clients one process needs, built once from settings."""

from dataclasses import dataclass, field
from uuid import UUID

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
from pipeline.repository import Repository
from pipeline.settings import Settings, as_env
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
    repo: Repository = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    events: EventHandler = field(init=False)

    def __post_init__(self) -> None:
        self.repo = Repository(self.db, self.settings)

    def _event_handler(self) -> EventHandler:
        repo, dispatcher = self.repo, self.dispatcher

        def start_conversion(job_id: UUID) -> None:
            launch(repo, dispatcher, "conversion", job_id)

        return EventHandler(repo, dispatcher, on_conversion_queued=start_conversion)

    def runners(self) -> dict[str, Runner]:
        from pipeline.probe import probe_dataset_file

        def probe(file_id: UUID) -> object:
            return probe_dataset_file(self.repo, self.storage, file_id)

        return {"probe": probe}

    def close(self) -> None:
        routes = getattr(self.dispatcher, "routes", {})
        for dispatcher in {id(d): d for d in routes.values()}.values():
            if isinstance(dispatcher, ThreadDispatcher):
                dispatcher.shutdown()
        self.db.close()


def build_services(settings: Settings, dispatcher: Dispatcher | None = None) -> Services:
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    services = Services(
        settings=settings,
        db=connect_database(settings),
        storage=Storage(settings),
        verifier=TokenVerifier.from_settings(settings),
        webhook_keys=WebhookKeys.parse(secret, settings.webhook_public_key),
    )
    services.dispatcher = dispatcher or _dispatcher(settings, services.runners())
    services.events = services._event_handler()
    return services


def _dispatcher(settings: Settings, runners: dict[str, Runner]) -> Dispatcher:
    """CPU work (the probe) in-process; GPU work (train, convert) in a worker process."""
    if settings.dispatch == "modal":
        from pipeline.dispatch_modal import ModalDispatcher

        return ModalDispatcher(settings.modal_app_name, settings.modal_environment)
    local = (
        InlineDispatcher(runners) if settings.dispatch == "inline" else ThreadDispatcher(runners)
    )
    gpu = SubprocessDispatcher(as_env(settings))
    return RoutingDispatcher({"probe": local, "train": gpu, "convert": gpu})
