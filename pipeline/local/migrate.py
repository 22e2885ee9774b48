"""Applies the Supabase CLI migrations to a Postgres that is not Supabase.

Versions are recorded where the Supabase CLI records them, so a database migrated here and one
migrated by `supabase db push` agree on what has been applied.
"""

from pathlib import Path

import psycopg

SHIM = Path(__file__).with_name("auth_shim.sql")
MIGRATIONS = Path(__file__).resolve().parents[2] / "supabase" / "migrations"


def migration_files(directory: Path = MIGRATIONS) -> list[Path]:
    return sorted(directory.glob("*.sql"))


def apply_shim(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SHIM.read_text())


def apply_migrations(url: str, directory: Path = MIGRATIONS) -> list[str]:
    """Applies each migration not yet recorded, each in its own transaction; returns versions."""
    applied: list[str] = []
    with psycopg.connect(url) as conn:
        for path in migration_files(directory):
            version, _, name = path.stem.partition("_")
            done = conn.execute(
                "select 1 from supabase_migrations.schema_migrations where version = %s",
                (version,),
            ).fetchone()
            if done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name) "
                    "values (%s, %s)",
                    (version, name),
                )
            applied.append(version)
    return applied


def prepare_database(url: str) -> list[str]:
    apply_shim(url)
    return apply_migrations(url)
