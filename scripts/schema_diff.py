"""Prints the migration that brings the migrations' database to the schema files' one.

    python -m scripts.schema_diff > supabase/migrations/<timestamp>_<name>.sql
    python -m scripts.schema_diff --url URL   # scratch databases in that cluster instead

It builds both databases (scripts/schema_catalog.py), asks migra (pinned in pyproject's
`schema` extra; the differ behind `supabase db diff --use-migra`) for the SQL from the first
to the second, applies that SQL to the first and compares the catalogs again. migra writes
no function grants, no publication membership and nothing about roles, so what still
differs is printed after the SQL as comments: those lines are written by hand (for a new
function, usually `select svc_private.restrict_to_service(array['name'])` and, for a worker
function, `select svc_private.grant_to_worker(array['name'])`). Review the result as any
migration: migra re-creates a changed view or function whole, and drops what the schema files
no longer have. docs/architecture.md, "How to change the database", has the whole workflow.
"""

import argparse
import sys
from pathlib import Path

import psycopg

from scripts.schema_catalog import (
    SCHEMAS,
    apply_schema_files,
    build_from_migrations,
    catalog,
    drift,
    scratch_database,
    throwaway_cluster,
)


def migra_sql(url_from: str, url_to: str) -> str:
    """migra's SQL from one database to the other, destructive statements included."""
    try:
        from migra import Migration
        from sqlbag import S
    except ImportError:
        sys.exit('migra is not installed: pip install -e ".[schema]"')

    def alchemy(url: str) -> str:
        return url.replace("postgresql://", "postgresql+psycopg2://", 1)

    with S(alchemy(url_from)) as a, S(alchemy(url_to)) as b:
        migration = Migration(a, b)
        migration.set_safety(False)
        migration.add_all_changes(privileges=True)
        return migration.sql if migration.statements else ""


def schema_diff(cluster_url: str, directory: Path = SCHEMAS) -> tuple[str, str]:
    """(migration SQL, what still differs once it is applied)."""
    with (
        scratch_database(cluster_url, "from_migrations") as migrated,
        scratch_database(cluster_url, "from_schemas") as declared,
    ):
        build_from_migrations(migrated)
        apply_schema_files(declared, directory)
        sql = migra_sql(migrated, declared)
        if sql.strip():
            with psycopg.connect(migrated) as conn:
                conn.execute(sql)
        with psycopg.connect(migrated) as a, psycopg.connect(declared) as b:
            left = drift(catalog(a), catalog(b), ("migrations + this SQL", "schemas"))
        return sql, left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a Postgres cluster to create two scratch databases in")
    args = parser.parse_args(argv)
    if args.url:
        sql, left = schema_diff(args.url)
    else:
        with throwaway_cluster() as url:
            sql, left = schema_diff(url)
    if not sql.strip() and not left:
        print("-- The schema files and the migrations build the same database.")
        return 0
    print(sql.strip())
    if left:
        print("\n-- Still different once the SQL above is applied; write these by hand:")
        print("\n".join("-- " + line for line in left.splitlines()))
    return 1


if __name__ == "__main__":
    sys.exit(main())
