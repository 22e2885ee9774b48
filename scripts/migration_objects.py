"""Lists what migration files create, replace, alter, drop or grant, object by object, and
which file of `supabase/schemas/` holds each object today.

After merging a branch that added a migration, run it on the new files to know what to copy
into which schema file (docs/architecture.md, "How to change the database"):

    python -m scripts.migration_objects supabase/migrations/20261204000001_x.sql ...

With `--apply` it also puts each function and view that a schema file already defines in
place, as the migrations last define it (the comment above it stays: read it again); new
objects, table changes and grants are listed for you to place by hand. Then
`python -m scripts.schema_catalog` says whether the schema files caught up.
"""

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts.schema_catalog import SCHEMAS, schema_files

DOLLAR = re.compile(r"\$[A-Za-z_0-9]*\$")
NAME = r"((?:\"[^\"]+\"|[\w]+)(?:\.(?:\"[^\"]+\"|[\w]+))?)"
IF_EXISTS = r"(?:if (?:not )?exists\s+)?"
PATTERNS = [
    ("function", "create or replace", rf"create\s+(?:or\s+replace\s+)?function\s+{NAME}\s*\("),
    ("view", "create or replace", rf"create\s+(?:or\s+replace\s+)?view\s+{NAME}"),
    ("table", "create", rf"create\s+table\s+{IF_EXISTS}{NAME}"),
    ("table", "alter", rf"alter\s+table\s+(?:only\s+)?{IF_EXISTS}{NAME}"),
    ("index", "create", rf"create\s+(?:unique\s+)?index\s+{IF_EXISTS}{NAME}\s+on\s+{NAME}"),
    ("trigger", "create", rf"create\s+(?:or\s+replace\s+)?trigger\s+{NAME}\s.*?\son\s+{NAME}"),
    ("policy", "create", rf"create\s+policy\s+{NAME}\s+on\s+{NAME}"),
    ("schema", "create", rf"create\s+schema\s+{IF_EXISTS}{NAME}"),
    ("function", "drop", rf"drop\s+function\s+{IF_EXISTS}{NAME}"),
    ("view", "drop", rf"drop\s+view\s+{IF_EXISTS}{NAME}"),
    ("trigger", "drop", rf"drop\s+trigger\s+{IF_EXISTS}{NAME}\s+on\s+{NAME}"),
    ("policy", "drop", rf"drop\s+policy\s+{IF_EXISTS}{NAME}\s+on\s+{NAME}"),
    (
        "privileges",
        "grant or revoke",
        rf"(?:grant|revoke)\s.*?\son\s+(?:table\s+|function\s+|schema\s+)?{NAME}",
    ),
    ("privileges", "restrict to service", r"select\s+svc_private\.restrict_to_service\((.*)\)"),
    ("privileges", "grant to worker", r"select\s+svc_private\.grant_to_worker\((.*)\)"),
    ("do block", "runs", r"do\s+\$"),
]


@dataclass
class Statement:
    text: str  # the statement, without the comments before it
    comment: str  # the comment lines right above it
    line: int


def split(sql: str) -> list[Statement]:
    """Splits a SQL script at top-level semicolons, minding quotes, dollar quotes and
    comments; each statement keeps the comment block written right above it."""
    statements: list[Statement] = []
    i, start, n = 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            i = sql.find("\n", i)
            i = n if i < 0 else i
        elif sql.startswith("/*", i):
            i = sql.index("*/", i) + 2
        elif c in "'\"":
            i = sql.index(c, i + 1) + 1
            while i < n and sql[i] == c:  # '' and "" escape the quote
                i = sql.index(c, i + 1) + 1
        elif c == "$" and (m := DOLLAR.match(sql, i)) and not sql[i - 1].isalnum():
            i = sql.index(m.group(0), m.end()) + len(m.group(0))
        elif c == ";":
            statements.append(_statement(sql, start, i + 1))
            start = i = i + 1
        else:
            i += 1
    if sql[start:].strip() and not all(
        line.strip().startswith("--") or not line.strip() for line in sql[start:].splitlines()
    ):
        statements.append(_statement(sql, start, n))
    return statements


def _statement(sql: str, start: int, end: int) -> Statement:
    chunk = sql[start:end]
    lines = chunk.strip("\n").splitlines()
    # The comment block right above the statement: its last run of `--` lines, after any
    # blank line that separates it from comments about something else.
    comment: list[str] = []
    body_at = 0
    for k, line in enumerate(lines):
        if line.strip().startswith("--"):
            comment.append(line)
        elif not line.strip():
            comment = []
        else:
            body_at = k
            break
    line = sql.count("\n", 0, start) + chunk[: len(chunk) - len(chunk.lstrip("\n"))].count("\n")
    return Statement("\n".join(lines[body_at:]), "\n".join(comment), line + body_at + 1)


def describe(statement: Statement) -> tuple[str, str, str]:
    """(kind, action, object) of a statement, e.g. ("function", "create or replace",
    "public.claim_job")."""
    head = re.sub(r"\s+", " ", statement.text).lower()
    for kind, action, pattern in PATTERNS:
        m = re.match(pattern, head, re.S)
        if m:
            if kind == "privileges" and action != "grant or revoke":
                names = re.findall(r"'(\w+)'", m.group(1))
                return kind, action, ", ".join(names) if names else "every definer function"
            if kind in ("index", "trigger", "policy") and m.lastindex == 2:
                return kind, action, f"{m.group(1)} on {m.group(2)}"
            return kind, action, m.group(1) if m.lastindex else head[:60] + " …"
    return "statement", "runs", head[:60] + " …"


def where_defined(name: str, directory: Path = SCHEMAS) -> list[str]:
    """The schema files that create (or alter) the object, by its bare name."""
    bare = name.split(" on ")[0].split(".")[-1].strip('"')
    defining = re.compile(
        rf"^\s*(create|alter)\s+(or\s+replace\s+)?(unique\s+)?\w+\s+(if\s+not\s+exists\s+)?"
        rf"([\w]+\.)?{re.escape(bare)}\b",
        re.I | re.M,
    )
    return [p.name for p in schema_files(directory) if defining.search(p.read_text())]


def replace_definition(name: str, kind: str, text: str, directory: Path = SCHEMAS) -> str | None:
    """Puts `text` in place of the schema files' definition of the function or view `name`,
    keeping the comment above it; returns the file's name, or None where none defines it."""
    for path in schema_files(directory):
        sql = path.read_text()
        for statement in split(sql):
            if describe(statement)[:1] + describe(statement)[2:] == (kind, name):
                path.write_text(sql.replace(statement.text, text, 1))
                return path.name
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("migrations", nargs="+", type=Path)
    parser.add_argument(
        "--apply",
        action="store_true",
        help="replace each function and view the schema files already define with the "
        "migrations' last definition (its comment there stays: read it again)",
    )
    parser.add_argument("--schemas", type=Path, default=SCHEMAS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for path in args.migrations:
        print(f"{path.name}:")
        for statement in split(path.read_text()):
            kind, action, name = describe(statement)
            into = ""
            if kind in ("function", "view", "table", "index", "trigger", "policy", "schema"):
                into = "  -> " + (", ".join(where_defined(name, args.schemas)) or "new")
            if args.apply and kind in ("function", "view") and action != "drop":
                done = replace_definition(name, kind, statement.text, args.schemas)
                into = f"  replaced in {done}" if done else "  -> new: add it by hand"
            what = f"{kind}: {name}" if action == "runs" else f"{kind} {name}"
            print(f"  line {statement.line:>4}  {action} {what}{into}")
            if args.apply and into.startswith("  replaced") and statement.comment:
                # What the migration says changed: the schema file's comment may need it.
                print("\n".join("          " + line for line in statement.comment.splitlines()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
