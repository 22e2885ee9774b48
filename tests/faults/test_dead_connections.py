"""A pool must not hand out connections the server has already closed.

Hosted Postgres restarts for upgrades and PgBouncer drops idle server connections; the pooled
connections then look open to the client until the next query on them fails. Found by the
fault harness (`tests/faults/test_chaos.py`, fault `pg_terminate`): after the backends were
killed, the next request on each pooled connection answered 503 although the database was up.
"""

from uuid import uuid4

import psycopg
import pytest

from pipeline.db import PostgresDatabase
from pipeline.local.stack import LocalStack
from pipeline.repository import Repository
from pipeline.settings import Settings

pytestmark = pytest.mark.faults


def _kill_backends(stack: LocalStack, app: str) -> int:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity"
            " where application_name = %s",
            (app,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_calls_after_the_servers_connections_died_succeed(
    stack: LocalStack, settings: Settings
) -> None:
    app = f"dead-conn-{uuid4().hex[:8]}"
    db = PostgresDatabase(f"{stack.database_url}&application_name={app}", min_size=3, max_size=3)
    repo = Repository(db, settings)
    user = stack.ensure_user(f"{app}@test.local")
    try:
        repo.quota_status(user)  # the pool is open and used
        assert _kill_backends(stack, app) >= 1
        for _ in range(6):  # more calls than the pool holds connections
            assert repo.quota_status(user).training.used == 0
    finally:
        db.close()
