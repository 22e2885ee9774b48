"""Row level security as Supabase's Data API and Realtime apply it: as role `authenticated`
with a user's claims, that user sees their own rows in every table and nobody else's."""

import json
from uuid import UUID

import psycopg
import pytest

from pipeline.local.stack import LocalStack
from pipeline.repository import Repository
from tests.helpers import (
    USER_TABLES,
    instant_rows,
    new_conversion,
    ready_dataset,
    trained_profile,
)


def _populate(repo: Repository, sql: psycopg.Connection, user_id: UUID) -> None:
    made = trained_profile(repo, user_id)
    new_conversion(repo, user_id, made["profile_id"])
    ready_dataset(repo, user_id, made["profile_id"], 30, full_mix=True)  # its separation job
    instant_rows(repo, user_id, made["profile_id"])
    sql.execute(
        "insert into public.quota_overrides (user_id, conversions_per_day) values (%s, 5)",
        (user_id,),
    )


def _visible(stack: LocalStack, role: str, user_id: UUID | None, table: str) -> set[str]:
    with psycopg.connect(stack.database_url) as conn:
        conn.execute(f"set local role {role}")
        if user_id is not None:
            claims = json.dumps({"sub": str(user_id), "role": role})
            conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        rows = conn.execute(f"select user_id from public.{table}").fetchall()
        return {str(r[0]) for r in rows}


def test_each_user_sees_only_their_rows(stack, repo, sql, alice, bob) -> None:
    _populate(repo, sql, alice.id)
    _populate(repo, sql, bob.id)
    for table in USER_TABLES:
        assert _visible(stack, "authenticated", alice.id, table) == {str(alice.id)}, table
        assert _visible(stack, "authenticated", bob.id, table) == {str(bob.id)}, table


def test_anon_sees_nothing_and_nobody_writes(stack, alice) -> None:
    for table in USER_TABLES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _visible(stack, "anon", None, table)
    with (
        psycopg.connect(stack.database_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("set local role authenticated")
        claims = json.dumps({"sub": str(alice.id), "role": "authenticated"})
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute(
            "insert into public.voice_profiles (user_id, name) values (%s, 'x')", (alice.id,)
        )


def test_clients_cannot_call_the_functions(stack, alice) -> None:
    with (
        psycopg.connect(stack.database_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("set local role authenticated")
        conn.execute("select public.create_profile(%s, 'x', 10)", (alice.id,))


def test_the_operators_note_is_not_readable_by_its_user(stack, sql, alice) -> None:
    sql.execute(
        "insert into public.quota_overrides (user_id, trainings_per_month, note) "
        "values (%s, 9, 'suspected abuse: watch this account')",
        (alice.id,),
    )
    claims = json.dumps({"sub": str(alice.id), "role": "authenticated"})
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        row = conn.execute(
            "select trainings_per_month, gpu_seconds_per_month from public.quota_overrides"
        ).fetchone()
        assert row == (9, None), "the limits themselves stay visible to their user"
    for query in (
        "select note from public.quota_overrides",
        "select * from public.quota_overrides",
    ):
        with (
            psycopg.connect(stack.database_url) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("set local role authenticated")
            conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
            conn.execute(query)
