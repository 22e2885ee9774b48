"""The workers' database login (`svc_worker`) against the real migrations: it may execute the
worker functions and is refused every table and every other function; the local stack and
the test stack hand it to the workers and to the probe."""

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from pipeline.local.stack import WORKER_ROLE, LocalStack
from pipeline.services import Services
from pipeline.settings import Settings, as_worker_env

# What train, convert, separate and the probe call (gpu/training/job.py, gpu/conversion/job.py,
# gpu/separation/job.py, the heartbeat in gpu/errors.py, pipeline/probe.py and the
# separation it starts, pipeline/separation.py); the migrations grant exactly these.
WORKER_FUNCTIONS = {
    "claim_job",
    "heartbeat_job",
    "fail_job",
    "training_inputs",
    "finish_training",
    "conversion_model",
    "finish_conversion",
    "get_dataset_file",
    "record_probe",
    "singer_check_files",
    "record_singer_embedding",
    "begin_probe",
    "record_training_pitch",
    "record_conversion_pitch",
    "request_singer_check",
    "begin_singer_check",
    "finish_singer_check",
    "take_separation",
    "set_job_call_id",
    "separation_source",
    "register_separated_vocal",
    "finish_separation",
    "get_instant_voice_by_id",
    "record_instant_reference",
    "instant_job_voice",
    "finish_instant_job",
    "text_voice",
    "finish_text",
}
OUR_SCHEMAS = ("public", "svc_private", "auth", "supabase_migrations")


@pytest.fixture(scope="module")
def worker(stack: LocalStack) -> Iterator[psycopg.Connection]:
    with psycopg.connect(stack.worker_database_url, autocommit=True) as conn:
        yield conn


def _functions(stack: LocalStack, schemas: tuple[str, ...]) -> list[tuple[str, str, list[str]]]:
    """(schema, name, argument types) of every function the migrations made."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        rows = conn.execute(
            """select n.nspname, p.proname,
                      coalesce(array(select format_type(t, null)
                                       from unnest(p.proargtypes) t), '{}')
                 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname = any(%s) and p.prokind = 'f'
                  and not exists (select 1 from pg_depend d
                                   where d.objid = p.oid and d.deptype = 'e')
                order by 1, 2""",
            (list(schemas),),
        ).fetchall()
    return [(schema, name, list(types)) for schema, name, types in rows]


def _tables(stack: LocalStack) -> list[tuple[str, str, str]]:
    """(schema, table, first column) of every table and view in our schemas."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute(
            """select n.nspname, c.relname,
                      (select attname from pg_attribute
                        where attrelid = c.oid and attnum = 1)
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm')
                order by 1, 2""",
            (list(OUR_SCHEMAS),),
        ).fetchall()


def _call(conn: psycopg.Connection, schema: str, name: str, types: list[str]) -> None:
    """Calls the function with a typed null for each argument."""
    args = SQL(", ").join(SQL("null::" + t) for t in types)
    conn.execute(SQL("select {}.{}({})").format(Identifier(schema), Identifier(name), args))


def test_the_role_is_a_plain_login_without_a_password(sql) -> None:
    row = sql.execute(
        "select rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit,"
        " rolpassword is null from pg_authid where rolname = %s",
        (WORKER_ROLE,),
    ).fetchone()
    assert row == (True, False, False, False, False, False, True)
    members = sql.execute(
        "select count(*) from pg_auth_members m join pg_roles r on r.oid = m.member"
        " where r.rolname = %s",
        (WORKER_ROLE,),
    ).fetchone()
    assert members == (0,)  # a member of no role: it inherits nothing


def test_every_table_is_refused(stack: LocalStack, worker: psycopg.Connection) -> None:
    tables = _tables(stack)
    assert {("public", "training_jobs"), ("public", "dataset_files"), ("auth", "users")} <= {
        (s, t) for s, t, _ in tables
    }
    for schema, table, column in tables:
        name = Identifier(schema, table)
        col = Identifier(column)
        for statement in (
            SQL("select * from {} limit 1").format(name),
            SQL("insert into {} default values").format(name),
            SQL("update {} set {} = {}").format(name, col, col),
            SQL("delete from {}").format(name),
            SQL("truncate {}").format(name),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                worker.execute(statement)


def test_it_cannot_create_anything(worker: psycopg.Connection) -> None:
    for statement in (
        "create table public.worker_was_here (id int)",
        "create function public.worker_fn() returns int language sql as 'select 1'",
        "create schema worker_schema",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            worker.execute(statement)


def test_every_other_function_is_refused(stack: LocalStack, worker: psycopg.Connection) -> None:
    others = [
        (s, n, t)
        for s, n, t in _functions(stack, ("public", "svc_private"))
        if not (s == "public" and n in WORKER_FUNCTIONS)
    ]
    names = {n for _, n, _ in others}
    assert {"start_training", "create_conversion", "register_upload", "cancel_job"} <= names
    assert {"reap_stale_jobs", "reset_quota_periods", "get_model_version", "lock_job"} <= names
    for schema, name, types in others:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _call(worker, schema, name, types)


def test_each_worker_function_is_allowed(stack: LocalStack, worker: psycopg.Connection) -> None:
    functions = [f for f in _functions(stack, ("public",)) if f[1] in WORKER_FUNCTIONS]
    assert {n for _, n, _ in functions} == WORKER_FUNCTIONS
    for schema, name, types in functions:
        try:
            _call(worker, schema, name, types)
        except psycopg.errors.InsufficientPrivilege as exc:  # pragma: no cover - the failure
            pytest.fail(f"{name}: {exc}")
        except psycopg.errors.RaiseException:
            pass  # a domain error about the null arguments: the call itself was allowed


def test_it_may_execute_exactly_the_worker_functions(stack: LocalStack, sql) -> None:
    allowed = {
        name
        for schema, name, _ in _functions(stack, ("public", "svc_private"))
        if sql.execute(
            "select has_function_privilege(%s, p.oid, 'execute') from pg_proc p"
            " join pg_namespace n on n.oid = p.pronamespace where n.nspname = %s"
            " and p.proname = %s limit 1",
            (WORKER_ROLE, schema, name),
        ).fetchone()[0]
    }
    assert allowed == WORKER_FUNCTIONS


def test_workers_and_the_probe_connect_as_the_worker_role(
    settings: Settings, services: Services
) -> None:
    env = as_worker_env(settings)
    with psycopg.connect(env["VC_DATABASE_URL"]) as conn:
        assert conn.execute("select current_user").fetchone() == (WORKER_ROLE,)
    assert env["VC_WORKER_DATABASE_URL"] == env["VC_DATABASE_URL"]
    # the probe runs on the services' worker login: a user-facing function is refused there
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        services.worker_repo.list_profiles(uuid4())
    assert services.repo.list_profiles(uuid4()) == []


def test_a_worker_context_connects_as_the_worker_role(settings: Settings) -> None:
    from gpu.runtime import worker_context

    ctx = worker_context(settings)
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ctx.repo.list_profiles(uuid4())
        assert ctx.repo.training_inputs(uuid4()) == []
    finally:
        ctx.close()


def test_the_supabase_transport_keeps_its_one_key_for_workers() -> None:
    """PostgREST knows one service key: a worker on that transport uses it, not a login."""
    from pipeline.db import SupabaseDatabase, connect_database

    settings = Settings(
        _env_file=None,
        db_transport="supabase",
        supabase_url="https://project-ref.supabase.co",
        supabase_service_role_key="eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2ln",
        worker_database_url="postgresql://svc_worker@db.project-ref.supabase.co/postgres",
    )
    assert isinstance(connect_database(settings, worker=True), SupabaseDatabase)
