"""The schema files (`supabase/schemas/`) and the migrations build the same database, object
for object, and each object is defined once in the schema files."""

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.migration_objects import describe, main, split
from scripts.schema_catalog import SCHEMAS, compare, schema_files, throwaway_cluster

DEFINING = {
    ("function", "create or replace"),
    ("view", "create or replace"),
    ("table", "create"),
    ("index", "create"),
    ("trigger", "create"),
    ("policy", "create"),
    ("schema", "create"),
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A Postgres of its own (only Postgres: no storage or auth is needed here), in which each
    comparison creates its two scratch databases."""
    with throwaway_cluster() as url:
        yield url


def test_schema_files_build_the_database_the_migrations_build(cluster: str) -> None:
    report = compare(cluster)
    assert report == "", "the schema files and the migrations differ:\n" + report


def test_a_drift_is_named_object_by_object(cluster: str, tmp_path: Path) -> None:
    """The comparison is not blind: a changed body, default, index or grant is reported by
    the name of the object it changed."""
    drifted = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, drifted)
    edits = {
        "30_job_machine.sql": ("'Unknown job kind.'", "'Unknown job kind!'"),
        "10_tables.sql": (
            "again boolean not null default false",
            "again boolean not null default true",
        ),
        "80_operators.sql": (
            "on ops.audit_log (target_id, at desc)",
            "on ops.audit_log (target_id)",
        ),
        "90_access.sql": ("'take_separation', ", ""),
    }
    for name, (old, new) in edits.items():
        text = (drifted / name).read_text()
        assert old in text, (name, old)
        (drifted / name).write_text(text.replace(old, new, 1))

    report = compare(cluster, drifted)

    assert "differs: function svc_private.job_table(p_kind text)" in report
    assert "+  perform svc_private.raise_error('INVALID_ARGUMENT', 'Unknown job kind!'," in report
    assert "differs: table public.singer_checks" in report
    assert "differs: index ops.audit_log_target_idx" in report
    assert "differs: function public.take_separation(" in report
    assert "svc_worker=X/postgres" in report


def test_each_object_is_defined_once() -> None:
    defined = Counter(
        (kind, name)
        for path in schema_files()
        for statement in split(path.read_text())
        for kind, action, name in [describe(statement)]
        if (kind, action) in DEFINING
    )
    assert len(defined) > 150
    assert [key for key, count in defined.items() if count > 1] == []


def test_new_migrations_are_listed_with_the_schema_file_of_each_object(
    tmp_path: Path, capsys
) -> None:
    migration = tmp_path / "20990101000001_example.sql"
    migration.write_text(
        "-- A comment about the function.\n"
        "create or replace function public.claim_job(p_kind text, p_job_id uuid)\n"
        "returns jsonb language plpgsql as $$ begin return '{}'; end $$;\n"
        "alter table public.dataset_files add column if not exists note text;\n"
        "create table if not exists public.example_jobs (id uuid primary key);\n"
        "select svc_private.grant_to_worker(array['claim_job']);\n"
    )
    assert main([str(migration)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "20990101000001_example.sql:"
    assert "create or replace function public.claim_job  -> 30_job_machine.sql" in lines[1]
    assert "alter table public.dataset_files  -> 10_tables.sql" in lines[2]
    assert "create table public.example_jobs  -> new" in lines[3]
    assert "grant to worker privileges claim_job" in lines[4]


def test_apply_puts_a_migrations_function_in_place_keeping_its_comment(
    tmp_path: Path, capsys
) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    before = (schemas / "30_job_machine.sql").read_text()
    migration = tmp_path / "20990101000001_example.sql"
    new = (
        "create or replace function public.cancel_job(p_kind text, p_user_id uuid, "
        "p_job_id uuid)\nreturns jsonb language sql security definer set search_path = '' "
        "as $$ select '{}'::jsonb $$;"
    )
    migration.write_text("-- Was: somewhere. Now a stub.\n" + new + "\n")

    assert main(["--apply", "--schemas", str(schemas), str(migration)]) == 0

    after = (schemas / "30_job_machine.sql").read_text()
    assert new in after and "Now a stub" not in after
    assert after.count("function public.cancel_job(") == 1
    assert len(after.splitlines()) < len(before.splitlines())
    out = capsys.readouterr().out
    assert "create or replace function public.cancel_job  replaced in 30_job_machine.sql" in out
    assert "-- Was: somewhere. Now a stub." in out


def test_schema_diff_writes_the_migration_and_names_what_it_cannot(
    cluster: str, tmp_path: Path
) -> None:
    """migra's SQL brings the migrations' database to the schema files'; what it does not
    write (a new function's grants) is reported, not lost."""
    pytest.importorskip("migra")
    from scripts.schema_diff import schema_diff

    changed = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, changed)
    tables = changed / "10_tables.sql"
    tables.write_text(
        tables.read_text().replace(
            "  seconds double precision not null default 0 check (seconds >= 0),\n"
            "  updated_at timestamptz not null default now()\n",
            "  seconds double precision not null default 0 check (seconds >= 0),\n"
            "  updated_at timestamptz not null default now(),\n"
            "  note text\n",
        )
    )
    events = changed / "70_events.sql"
    events.write_text(
        events.read_text()
        + "\ncreate or replace function public.events_today() returns jsonb language sql "
        "stable security definer set search_path = '' as $$ select '{}'::jsonb $$;\n"
    )

    sql, left = schema_diff(cluster, changed)

    assert 'alter table "public"."gpu_spend" add column "note" text;' in sql
    assert "CREATE OR REPLACE FUNCTION public.events_today()" in sql
    assert "drop" not in sql.lower()
    assert left.splitlines()[0] == "differs: function public.events_today()"
    assert "+acl postgres=X/postgres, service_role=X/postgres" in left
