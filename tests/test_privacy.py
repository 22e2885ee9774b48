"""A person's data goes when they ask, from logs and bookkeeping too: the event handler logs
keys redacted (never the user id or a file's name), the events' dedupe table and the
operators' outcome counts hold no key, and events that arrive after `DELETE /me` (R2 reports
the deletes of the person's objects) leave nothing naming them."""

import logging
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import psycopg

from pipeline import keys, redact
from schemas.events import R2Event
from tests.audio import encode, voice
from tests.events_helpers import deliver, r2_event
from tests.test_erasure import ERASE, _mentions

SONG = "Grandmas Lullaby.wav"  # its key-safe form is Grandmas_Lullaby.wav
NAME_NEEDLE = "Grandmas"
MIGRATION = Path(__file__).parent.parent / (
    "supabase/migrations/20261204000130_private_event_ids.sql"
)


def _logged(caplog) -> str:
    return caplog.text + "\n".join(r.getMessage() for r in caplog.records)


def test_the_event_handler_logs_no_user_id_or_file_name(services, repo, alice, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    profile = repo.create_profile(alice.id, "logs")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, SONG)
    assert str(alice.id) in key and NAME_NEEDLE in key
    bucket = services.settings.s3_bucket
    sent = [
        r2_event(bucket, key, "e1", 10),  # no such upload: ignored
        r2_event(bucket, key, None, action="DeleteObject"),
        r2_event(bucket, f"vc/users/{alice.id}/stray/{SONG}", "e1", 10),  # outside the layout
        r2_event("someone-else", key, "e1", 10),
    ]
    outcomes = [services.events.handle(R2Event.model_validate(e)).outcome for e in sent]

    assert outcomes == ["ignored"] * 4
    logged = _logged(caplog)
    assert "ignored event" in logged, "the handler does log what it ignored"
    assert str(alice.id) not in logged
    assert NAME_NEEDLE not in logged
    assert f"dataset:{file_id}" in logged, "the line still says which row it was about"


def test_the_log_safety_net_redacts_what_a_call_site_did_not(caplog) -> None:
    """An exception quoting a key or an email (a database error's detail, say) is redacted
    in every record once `redact.install()` has run (every process's start runs it)."""
    redact.install()
    caplog.set_level(logging.DEBUG)
    user, file_id = uuid4(), uuid4()
    key = f"vc/users/{user}/profiles/{uuid4()}/dataset/{file_id}/Grandmas_Lullaby.wav"
    try:
        raise RuntimeError(f'duplicate key "{key}" of someone@example.org')
    except RuntimeError:
        logging.getLogger("tests.privacy").exception("could not record %s", key)
    logging.getLogger("tests.privacy").info("a job for {'user_id': '%s'}", user)
    logged = _logged(caplog)
    assert "could not record" in logged and "RuntimeError" in logged
    assert str(user) not in logged and NAME_NEEDLE not in logged
    assert "someone@example.org" not in logged
    assert f"dataset:{file_id}" in logged
    assert f"{{'user_id': '{redact.user(user)}'}}" in logged


def test_events_after_erasure_leave_nothing_naming_the_person(
    services, sql, alice, api_url, relay_secret_key
) -> None:
    profile = alice.client.post("/profiles", json={"name": "late events"}).json()
    data = encode(voice(3.0), 44100, "wav")
    body = {"filename": SONG, "content_type": "audio/wav", "size_bytes": len(data)}
    ticket = alice.client.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).json()
    put = httpx.put(ticket["upload_url"], content=data, headers=ticket["headers"])
    assert put.status_code == 200
    key, bucket = ticket["object_key"], services.settings.s3_bucket
    etag = services.storage.head(key).etag
    created = r2_event(bucket, key, etag, len(data))
    assert deliver(api_url, relay_secret_key, created).status_code == 200
    needles = [str(alice.id), alice.email, NAME_NEEDLE]
    assert _mentions(sql, needles), "the upload names alice and her file"

    assert alice.client.request("DELETE", "/me", json=ERASE).status_code == 200
    # R2 reports the deletes erasure made, and redelivers the upload's create, after the
    # account is gone.
    for late in (r2_event(bucket, key, None, action="DeleteObject"), created):
        assert deliver(api_url, relay_secret_key, late).status_code == 200

    assert _mentions(sql, needles) == []
    dedupe = "select count(*) from public.processed_events where event_id = %s"
    assert sql.execute(dedupe, (redact.digest(f"{bucket}/{key}#{etag}"),)).fetchone()[0] == 1


def test_the_migration_hashes_the_ids_already_stored(stack, repo) -> None:
    """A row stored raw before the change is hashed the way the service hashes, so its
    redelivery is still a duplicate; applying the migration again changes nothing."""
    raw = f"bucket/vc/users/{uuid4()}/profiles/{uuid4()}/dataset/{uuid4()}/Grandmas.wav#e1"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "alter table public.processed_events drop constraint processed_events_event_id_hashed"
        )
        conn.execute("insert into public.processed_events values ('r2', %s)", (raw,))
        for _ in range(2):
            conn.execute(MIGRATION.read_text())
        stored = conn.execute(
            "select count(*) from public.processed_events where event_id like %s",
            (f"%{raw.split('/')[3]}%",),
        ).fetchone()[0]
    assert stored == 0
    assert repo.event_seen("r2", raw)
    assert repo.record_event("r2", raw) is False


def _refused(sql: psycopg.Connection, user: object, name: str) -> UUID:
    """A profile row Postgres refuses, logged with its error as a careless call site would."""
    profile = uuid4()
    try:
        sql.execute(
            "insert into public.voice_profiles (id, user_id, name) values (%s, %s, %s)",
            (profile, user, name),
        )
    except psycopg.errors.IntegrityError as error:
        logging.getLogger("tests.privacy").exception("profile %s refused: %s", profile, error)
    return profile


def test_the_safety_net_redacts_the_key_the_database_quotes(sql, alice, caplog) -> None:
    """Postgres quotes the key of a row it refuses ("Key (user_id)=(…) is not present",
    "Key (user_id, lower(btrim(name)))=(…, grandmas lullaby) already exists"), so a call site
    that logs the error logs the person's id and their profile's name with it. The safety net
    hashes the user's id (as `redact.user` does, so one person's lines still read together),
    withholds the other values, and keeps the refused row's own id, which names no one."""
    redact.install()
    caplog.set_level(logging.DEBUG)
    stranger = uuid4()
    orphan = _refused(sql, stranger, "x")  # no such user
    alice.client.post("/profiles", json={"name": SONG}).raise_for_status()
    twin = _refused(sql, alice.id, SONG)  # the name is taken
    logged = _logged(caplog)
    assert "is not present" in logged and "already exists" in logged, logged
    assert str(stranger) not in logged and str(alice.id) not in logged
    assert redact.user(stranger) in logged and redact.user(alice.id) in logged
    assert NAME_NEEDLE.lower() not in logged.lower()
    assert str(orphan) in logged and str(twin) in logged
