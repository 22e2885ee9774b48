"""The orphan sweep's claim check looks each key's owner up by key: the same answer as the old
function (rebuilt here from its migration, as it ran until now) on a mixed set of claimed and
unclaimed keys, while reading a bounded number of rows per key however many model versions
and conversions exist (the old one read them all for every key)."""

import re
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pipeline import keys
from tests.helpers import new_conversion, ready_dataset, trained_profile
from tests.test_retention import finished_song

MIGRATIONS = Path(__file__).resolve().parent.parent / "supabase" / "migrations"


def _old_function(conn: psycopg.Connection) -> None:
    """`unclaimed_object_keys` as 20261122000011 defined it, as a temporary function."""
    text = (MIGRATIONS / "20261122000011_song_conversions.sql").read_text()
    body = re.search(
        r"create or replace function public\.unclaimed_object_keys\(p_keys jsonb\).*?\n\$\$;",
        text,
        re.S,
    )
    assert body, "the old definition is where it was"
    conn.execute(
        body.group(0).replace("public.unclaimed_object_keys", "pg_temp.old_unclaimed_object_keys")
    )


def _claims(conn: psycopg.Connection, function: str, candidates: list[str]) -> set:
    return set(conn.execute(f"select {function}(%s)", (Jsonb(candidates),)).fetchone()[0])


def _body(migration: str) -> str:
    """The SQL of `unclaimed_object_keys` as a migration defines it, `p_keys` a parameter."""
    text = (MIGRATIONS / migration).read_text()
    found = re.search(
        r"create or replace function public\.unclaimed_object_keys\(p_keys jsonb\).*?"
        r"as \$\$(.*?)\$\$;",
        text,
        re.S,
    )
    assert found, f"the definition in {migration}"
    return found.group(1).replace("%", "%%").replace("p_keys", "%(keys)s::jsonb")


def _work(node: dict) -> float:
    """Rows produced by every plan node over all its loops: what the query touched,
    rescans of a materialised table included."""
    own = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    return own + sum(_work(child) for child in node.get("Plans", []))


def _rows_touched(conn: psycopg.Connection, migration: str, candidates: list[str]) -> float:
    query = "explain (analyze, format json) " + _body(migration)
    plan = conn.execute(query, {"keys": Jsonb(candidates)}).fetchone()[0][0]["Plan"]
    return _work(plan)


@pytest.fixture(scope="module")
def arranged(services, stack) -> list[str]:
    """A few hundred model versions and conversions, and keys of every kind around them."""
    repo = services.repo

    def person() -> object:
        user_id = stack.ensure_user(f"orphans-{uuid4().hex[:12]}@test.local")
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute(
                "insert into public.quota_overrides (user_id, trainings_per_month, "
                "conversions_per_day) values (%s, 1000, 1000)",
                (user_id,),
            )
        return user_id

    candidates: list[str] = []
    for n in range(150):
        if n % 15 == 0:  # at most 20 profiles a person
            user = person()
        made = trained_profile(repo, user, f"v{n}")
        pid, version = made["profile_id"], made["model_version_id"]
        candidates += [
            keys.model_key(user, pid, version),
            keys.model_config_key(user, pid, version),
            keys.model_preview_key(user, pid, version, "converted"),
            keys.model_key(user, pid, uuid4()),  # a version that is gone
        ]
        if n % 10 == 0:  # one live conversion per person: two more people
            waiting, singing = (person() for _ in "ab")
            wpid = trained_profile(repo, waiting, "waiting")["profile_id"]
            job = new_conversion(repo, waiting, wpid)
            candidates.append(keys.conversion_input_key(waiting, wpid, job, "wav"))
            candidates.append(keys.conversion_output_key(waiting, wpid, job))  # not finished
            spid = trained_profile(repo, singing, "singing")["profile_id"]
            song, parts = finished_song(repo, services.storage, singing, spid)
            candidates += sorted(parts)
            candidates.append(keys.conversion_input_key(singing, spid, song, "wav"))
            candidates.append(keys.conversion_part_key(singing, spid, uuid4(), "vocal"))
        if n % 25 == 0:
            file_id = ready_dataset(repo, user, pid, 30)
            candidates.append(repo.get_dataset_file(file_id).object_key)
            candidates.append(keys.dataset_key(user, pid, uuid4(), "gone.wav"))
    user = person()
    training_profile = repo.create_profile(user, "training now")
    ready_dataset(repo, user, training_profile.id, 200)
    repo.start_training(user, training_profile.id, {"preset": "tiny"})
    candidates += [
        keys.model_key(user, training_profile.id, uuid4()),  # the running training's upload
        f"vc/users/{user}/profiles/{training_profile.id}/models/not-a-version",
        f"vc/users/{str(user).upper()}/profiles/{training_profile.id}/models/x/model.pth",
        "vc/users/not-a-user/anything.wav",
        "elsewhere/entirely.bin",
    ]
    return candidates


def test_the_same_keys_are_unclaimed_as_before(stack, arranged) -> None:
    with psycopg.connect(stack.database_url) as conn:
        _old_function(conn)
        old = _claims(conn, "pg_temp.old_unclaimed_object_keys", arranged)
        new = _claims(conn, "public.unclaimed_object_keys", arranged)
    assert 20 < len(new) < len(arranged), "a mix of claimed and unclaimed keys"
    assert new == old


def test_rows_touched_per_key_do_not_grow_with_the_tables(stack, arranged) -> None:
    with psycopg.connect(stack.database_url) as conn:
        versions = conn.execute("select count(*) from public.model_versions").fetchone()[0]
        old = _rows_touched(conn, "20261122000011_song_conversions.sql", arranged)
        new = _rows_touched(conn, "20261204000005_orphan_lookup.sql", arranged)
    per_key_old, per_key_new = old / len(arranged), new / len(arranged)
    print(
        f"\norphan claim check, {len(arranged)} keys, {versions} model versions: "
        f"plan rows per key {per_key_old:.0f} before, {per_key_new:.1f} now"
    )
    assert per_key_old > versions / 2, "the old check went through every version for each key"
    assert per_key_new < 20
