"""Every SQL function the Python code calls exists in the migrated database with the argument
names it passes, and every argument without a default is passed."""

import ast
from pathlib import Path

import psycopg

PACKAGES = ["pipeline", "endpoints", "gpu"]
ROOT = Path(__file__).resolve().parents[1]


def python_calls() -> dict[str, list[set[str]]]:
    """`<anything>.call("fn", a=…, b=…)` sites, by function name."""
    calls: dict[str, list[set[str]]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "call"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    kwargs = {k.arg for k in node.keywords if k.arg is not None}
                    if any(k.arg is None for k in node.keywords):
                        kwargs.add("**")
                    calls.setdefault(node.args[0].value, []).append(kwargs)
    return calls


def sql_signatures(url: str) -> dict[str, tuple[list[str], int]]:
    """Function name → (argument names, number of trailing arguments with defaults)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select p.proname, p.proargnames, p.pronargdefaults from pg_proc p "
            "join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'"
        ).fetchall()
    return {name: (list(args or []), defaults) for name, args, defaults in rows}


def test_every_called_function_matches_the_migrations(stack) -> None:
    calls = python_calls()
    signatures = sql_signatures(stack.database_url)
    assert len(calls) >= 20
    for fn, sites in calls.items():
        assert fn in signatures, f"{fn} is called but not defined in the migrations"
        args, n_defaults = signatures[fn]
        names = {a.removeprefix("p_") for a in args}
        required = {a.removeprefix("p_") for a in args[: len(args) - n_defaults]}
        for kwargs in sites:
            passed = kwargs - {"**"}
            assert passed <= names, f"{fn}: unknown arguments {passed - names}"
            if "**" not in kwargs:
                assert required <= passed, f"{fn}: missing arguments {required - passed}"


def test_contract_check_would_catch_a_typo(stack) -> None:
    signatures = sql_signatures(stack.database_url)
    args, _ = signatures["start_training"]
    assert "p_profile_id" in args
    assert "p_profile" not in args
