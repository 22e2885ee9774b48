"""A Postgres of the fault tests' own, which they may stop and restart without disturbing the
session's (tests/conftest.py), with the same migrations."""

from collections.abc import Iterator

import pytest

from tests.faults.stack import ChaosStack


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    stack = ChaosStack.create(tmp_path_factory.mktemp("own-pg"))
    stack.start_database()
    try:
        yield stack
    finally:
        if stack.postgres is not None:
            stack.postgres.cleanup()
            stack.stop_postgres_if_running()


@pytest.fixture(scope="module")
def own_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    """A SeaweedFS of the fault tests' own, to stop and restart."""
    stack = ChaosStack.create(tmp_path_factory.mktemp("own-s3"))
    stack.start_storage()
    try:
        yield stack
    finally:
        stack.stop()
