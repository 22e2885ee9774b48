"""The migrations build the whole database from empty, and running them again is harmless."""

import psycopg
import pytest

from pipeline.local.migrate import apply_migrations, apply_shim, migration_files
from pipeline.local.stack import LocalStack
from tests.helpers import USER_TABLES

TABLES = {*USER_TABLES, "processed_events"}


@pytest.fixture
def empty_db(stack: LocalStack) -> str:
    name = "fresh_" + str(abs(hash(stack.database_url)) % 10_000)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name}")
        conn.execute(f"create database {name}")
    return stack.database_url.replace("/postgres?", f"/{name}?")


def test_migrations_apply_from_empty_and_twice(empty_db: str) -> None:
    apply_shim(empty_db)
    first = apply_migrations(empty_db)
    assert first == [p.stem.split("_")[0] for p in migration_files()]
    apply_shim(empty_db)
    assert apply_migrations(empty_db) == []
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # The files themselves are re-runnable too, not only the runner.
        for path in migration_files():
            conn.execute(path.read_text())
        tables = {
            r[0]
            for r in conn.execute(
                "select tablename from pg_tables where schemaname = 'public'"
            ).fetchall()
        }
        assert tables >= TABLES
        no_rls = conn.execute(
            "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relkind = 'r' and not c.relrowsecurity"
        ).fetchall()
        assert no_rls == []


def test_functions_are_definer_with_empty_search_path_and_not_callable_by_clients(
    stack: LocalStack,
) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        rows = conn.execute(
            """
            select p.proname, p.prosecdef, p.proconfig,
                   has_function_privilege('anon', p.oid, 'execute'),
                   has_function_privilege('authenticated', p.oid, 'execute'),
                   has_function_privilege('service_role', p.oid, 'execute')
              from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'public'
            """
        ).fetchall()
    assert len(rows) >= 20
    for name, definer, config, anon, authenticated, service in rows:
        assert definer, name
        assert config == ['search_path=""'], (name, config)
        assert not anon and not authenticated, name
        assert service, name


def test_realtime_publication_covers_job_and_dataset_tables(stack: LocalStack) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        published = {
            r[0]
            for r in conn.execute(
                "select tablename from pg_publication_tables where pubname = 'supabase_realtime'"
            ).fetchall()
        }
    assert {
        "dataset_files",
        "training_jobs",
        "conversion_jobs",
        "separation_jobs",
        "text_jobs",
        "model_versions",
    } <= published


def test_job_tables_name_the_worker_call_for_what_it_is_and_no_function_uses_the_old_name(
    stack: LocalStack,
) -> None:
    """The call id is Modal's in production and `local-<pid>` locally: `worker_call_id`.
    A function re-created later from an old copy would still say `modal_call_id` and fail
    only when it runs, so the stored function bodies are checked too."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        columns = conn.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'public' and column_name like '%call_id'"
        ).fetchall()
        stale = conn.execute(
            "select n.nspname || '.' || p.proname from pg_proc p "
            "join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname in ('public', 'svc_private') and p.prosrc like '%modal_call_id%'"
        ).fetchall()
    assert sorted(columns) == [
        ("conversion_jobs", "worker_call_id"),
        ("instant_jobs", "worker_call_id"),
        ("separation_jobs", "worker_call_id"),
        ("text_jobs", "worker_call_id"),
        ("training_jobs", "worker_call_id"),
    ]
    assert stale == []
