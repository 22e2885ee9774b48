"""Builds one database from `supabase/migrations/` and one from `supabase/schemas/`, dumps
both catalogs as one readable text per object, and prints what differs.

The migrations are the deploy history (hosted projects have them applied); the schema files
are the readable current state. They must describe the same database, object for object:
tables with their columns, constraints, indexes, policies and grants, functions with their
bodies and grants, views, triggers, sequences, types, schemas, publications. Why each object
is one text: a drift then reads as "function public.claim_job(...)" plus a line diff, not as
a row somewhere in a dump.

    python -m scripts.schema_catalog            # a throwaway pgserver cluster
    python -m scripts.schema_catalog --url URL  # two scratch databases in that cluster

Exits 1 and prints the drift when they differ. tests/test_declarative_schema.py runs the same.
"""

import argparse
import difflib
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import psycopg

from pipeline.local.migrate import apply_migrations, apply_shim

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "supabase" / "schemas"

# Postgres's own schemas, and the one where the Supabase CLI records applied versions (its
# rows differ by construction: the schema files are not versions).
SKIP_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast', 'supabase_migrations')"
NS = f"n.nspname not in {SKIP_SCHEMAS} and n.nspname not like 'pg\\_temp%'"


def schema_files(directory: Path = SCHEMAS) -> list[Path]:
    """The declarative files in the order Supabase applies them: lexical."""
    return sorted(directory.glob("*.sql"))


def apply_schema_files(url: str, directory: Path = SCHEMAS) -> None:
    """Applies the shim (what hosted Supabase already has), then every schema file, each in
    its own transaction, onto an empty database."""
    apply_shim(url)
    with psycopg.connect(url) as conn:
        for path in schema_files(directory):
            with conn.transaction():
                conn.execute(path.read_text())


def build_from_migrations(url: str) -> None:
    apply_shim(url)
    apply_migrations(url)


def _acl(value: list[str] | None) -> str:
    """An ACL as sorted items; null (the built-in default) stays visible as such."""
    return "default" if value is None else ", ".join(sorted(value))


def _rows(conn: psycopg.Connection, query: str) -> list[tuple]:
    return conn.execute(query).fetchall()


def catalog(conn: psycopg.Connection) -> dict[str, str]:
    """Every object of the database as `kind qualified-name` -> its description."""
    objects: dict[str, str] = {}

    for name, owner, acl, comment in _rows(
        conn,
        f"""select n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text[],
                   obj_description(n.oid, 'pg_namespace')
              from pg_namespace n where {NS}""",
    ):
        objects[f"schema {name}"] = f"owner {owner}\nacl {_acl(acl)}\ncomment {comment}"

    for ext, version, schema in _rows(
        conn,
        "select e.extname, e.extversion, n.nspname from pg_extension e "
        "join pg_namespace n on n.oid = e.extnamespace",
    ):
        objects[f"extension {ext}"] = f"version {version} in {schema}"

    relations = _rows(
        conn,
        f"""select c.oid, c.relkind, n.nspname, c.relname, pg_get_userbyid(c.relowner),
                   c.relacl::text[], c.relrowsecurity, c.relforcerowsecurity,
                   c.reloptions::text[], obj_description(c.oid, 'pg_class'),
                   case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end
              from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where {NS} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')""",
    )
    kinds = {
        "r": "table",
        "p": "table",
        "v": "view",
        "m": "materialized view",
        "S": "sequence",
        "f": "foreign table",
    }
    for oid, relkind, schema, name, owner, acl, rls, force, options, comment, viewdef in relations:
        lines = [f"owner {owner}", f"acl {_acl(acl)}", f"comment {comment}"]
        lines.append(f"options {options}")
        if relkind in ("r", "p"):
            lines.append(f"row level security {rls}, forced {force}")
        for col in _rows(
            conn,
            f"""select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                       a.attacl::text[], col_description(a.attrelid, a.attnum),
                       coll.collname
                  from pg_attribute a
                  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                  left join pg_collation coll
                    on coll.oid = a.attcollation and a.attcollation <> 100
                 where a.attrelid = {oid} and a.attnum > 0 and not a.attisdropped
                 order by a.attnum""",
        ):
            colname, typ, notnull, default, identity, generated, colacl, colcomment, coll = col
            text = f"column {colname} {typ}"
            text += " not null" if notnull else ""
            text += f" default {default}" if default is not None else ""
            text += f" identity {identity}" if identity else ""
            text += f" generated {generated}" if generated else ""
            text += f" collate {coll}" if coll else ""
            text += f" acl {_acl(colacl)}" if colacl is not None else ""
            text += f" comment {colcomment}" if colcomment is not None else ""
            lines.append(text)
        if relkind == "S":
            seq = conn.execute(
                f"""select format_type(seqtypid, null), seqstart, seqincrement, seqmax, seqmin,
                           seqcache, seqcycle from pg_sequence where seqrelid = {oid}"""
            ).fetchone()
            lines.append(f"sequence {seq}")
        if viewdef is not None:
            lines.append("definition:\n" + viewdef)
        objects[f"{kinds[relkind]} {schema}.{name}"] = "\n".join(lines)

    for schema, table, name, contype, definition, deferrable, deferred in _rows(
        conn,
        f"""select n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),
                   k.condeferrable, k.condeferred
              from pg_constraint k join pg_class c on c.oid = k.conrelid
              join pg_namespace n on n.oid = c.relnamespace where {NS}""",
    ):
        objects[f"constraint {schema}.{table}.{name}"] = f"{contype}: {definition}" + (
            f" deferrable (initially deferred {deferred})" if deferrable else ""
        )

    for schema, name, definition in _rows(
        conn,
        f"""select n.nspname, i.relname, pg_get_indexdef(i.oid)
              from pg_index x join pg_class i on i.oid = x.indexrelid
              join pg_namespace n on n.oid = i.relnamespace where {NS}""",
    ):
        objects[f"index {schema}.{name}"] = definition

    for schema, table, name, permissive, roles, cmd, qual, check in _rows(
        conn,
        f"""select schemaname, tablename, policyname, permissive, roles::text[], cmd, qual,
                   with_check from pg_policies where schemaname not in {SKIP_SCHEMAS}""",
    ):
        objects[f"policy {schema}.{table}.{name}"] = (
            f"{permissive} for {cmd} to {', '.join(sorted(roles))}\n"
            f"using {qual}\nwith check {check}"
        )

    for schema, table, name, definition, enabled in _rows(
        conn,
        f"""select n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
              from pg_trigger t join pg_class c on c.oid = t.tgrelid
              join pg_namespace n on n.oid = c.relnamespace
             where {NS} and not t.tgisinternal""",
    ):
        objects[f"trigger {schema}.{table}.{name}"] = f"{definition}\nenabled {enabled}"

    for schema, signature, kind, owner, acl, comment, definition in _rows(
        conn,
        f"""select n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                   p.prokind, pg_get_userbyid(p.proowner), p.proacl::text[],
                   obj_description(p.oid, 'pg_proc'),
                   case when p.prokind in ('f', 'p', 'w') then pg_get_functiondef(p.oid) end
              from pg_proc p join pg_namespace n on n.oid = p.pronamespace where {NS}""",
    ):
        objects[f"function {schema}.{signature}"] = (
            f"kind {kind}\nowner {owner}\nacl {_acl(acl)}\ncomment {comment}\n"
            f"definition:\n{definition}"
        )

    for schema, name, typtype, detail in _rows(
        conn,
        f"""select n.nspname, t.typname, t.typtype,
                   case t.typtype
                     when 'e' then (select string_agg(enumlabel, ', ' order by enumsortorder)
                                      from pg_enum where enumtypid = t.oid)
                     when 'd' then format_type(t.typbasetype, t.typtypmod) || ' ' || coalesce(
                       (select string_agg(pg_get_constraintdef(k.oid), ' ' order by k.conname)
                          from pg_constraint k where k.contypid = t.oid), '')
                   end
              from pg_type t join pg_namespace n on n.oid = t.typnamespace
             where {NS} and t.typtype in ('e', 'd', 'r', 'm')
                or ({NS} and t.typtype = 'c' and (select relkind from pg_class
                                                   where oid = t.typrelid) = 'c')""",
    ):
        objects[f"type {schema}.{name}"] = f"{typtype}: {detail}"

    for pub, alltables, actions in _rows(
        conn,
        "select pubname, puballtables, concat_ws(',', case when pubinsert then 'insert' end, "
        "case when pubupdate then 'update' end, case when pubdelete then 'delete' end, "
        "case when pubtruncate then 'truncate' end) from pg_publication",
    ):
        tables = [
            f"{s}.{t}"
            for s, t in _rows(
                conn,
                "select schemaname, tablename from pg_publication_tables "
                f"where pubname = '{pub}' order by 1, 2",
            )
        ]
        objects[f"publication {pub}"] = f"all tables {alltables}, {actions}\n" + "\n".join(tables)

    for role, schema, objtype, acl in _rows(
        conn,
        "select pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype, d.defaclacl::text[] "
        "from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace",
    ):
        objects[f"default privileges {role} in {schema} on {objtype}"] = _acl(acl)

    return objects


def drift(expected: dict[str, str], actual: dict[str, str], labels: tuple[str, str]) -> str:
    """A readable report of what differs, object by object; empty when nothing does."""
    out: list[str] = []
    for key in sorted(expected.keys() - actual.keys()):
        out.append(f"only in {labels[0]}: {key}")
    for key in sorted(actual.keys() - expected.keys()):
        out.append(f"only in {labels[1]}: {key}")
    for key in sorted(expected.keys() & actual.keys()):
        if expected[key] != actual[key]:
            out.append(f"differs: {key}")
            out.extend(
                "    " + line
                for line in difflib.unified_diff(
                    expected[key].splitlines(),
                    actual[key].splitlines(),
                    labels[0],
                    labels[1],
                    lineterm="",
                    n=2,
                )
            )
    return "\n".join(out)


def database_url(cluster_url: str, name: str) -> str:
    """The URL of database `name` in the same cluster (pgserver URLs name `postgres`)."""
    return cluster_url.replace("/postgres?", f"/{name}?", 1)


@contextmanager
def scratch_database(cluster_url: str, prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid4().hex[:8]}"
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    try:
        yield database_url(cluster_url, name)
    finally:
        with psycopg.connect(cluster_url, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")


def compare(cluster_url: str, directory: Path = SCHEMAS) -> str:
    """Builds both databases in the cluster and returns the drift between them."""
    with (
        scratch_database(cluster_url, "from_migrations") as migrated,
        scratch_database(cluster_url, "from_schemas") as declared,
    ):
        build_from_migrations(migrated)
        apply_schema_files(declared, directory)
        with psycopg.connect(migrated) as a, psycopg.connect(declared) as b:
            return drift(catalog(a), catalog(b), ("migrations", "schemas"))


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    from pipeline.local.postgres import start_postgres

    with tempfile.TemporaryDirectory(prefix="svc-schema-") as root:
        server, url = start_postgres(Path(root) / "pg")
        try:
            yield url
        finally:
            server.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a Postgres cluster to create two scratch databases in")
    args = parser.parse_args(argv)
    if args.url:
        report = compare(args.url)
    else:
        with throwaway_cluster() as url:
            report = compare(url)
    print(report or "The schema files and the migrations build the same database.")
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
