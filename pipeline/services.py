"""The long-lived clients one process needs, built once from settings."""

from dataclasses import dataclass

from pipeline.auth import TokenVerifier
from pipeline.db import Database, connect_database
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage


@dataclass
class Services:
    settings: Settings
    db: Database
    storage: Storage
    verifier: TokenVerifier

    @property
    def repo(self) -> Repository:
        return Repository(self.db, self.settings)

    def close(self) -> None:
        self.db.close()


def build_services(settings: Settings) -> Services:
    return Services(
        settings=settings,
        db=connect_database(settings),
        storage=Storage(settings),
        verifier=TokenVerifier.from_settings(settings),
    )
