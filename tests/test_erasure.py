"""`DELETE /me` leaves nothing naming the person in any table or view we own, deletes the
account itself, lets a disabled account erase, and survives a storage outage: a 503 with
Retry-After, and the retry finishes what the first call started."""

from dataclasses import replace

import httpx
import psycopg
import pytest
from psycopg import sql as q

from endpoints.app import create_app
from pipeline.local.issuer import ThreadedServer
from pipeline.local.seaweed import free_port
from pipeline.storage import Storage
from tests.events_helpers import deliver, r2_event
from tests.test_retention import objects, voice_with_files

ERASE = {"confirm": "erase my data"}


@pytest.fixture
def storage(services):
    return services.storage


TEXT_TYPES = ("text", "character varying", "uuid", "json", "jsonb", "ARRAY", "USER-DEFINED")


def _mentions(conn: psycopg.Connection, needles: list[str]) -> list[str]:
    """Every table column (text, uuid, json, arrays) and every view row, in every schema but
    the system's, that holds one of `needles`."""
    found: list[str] = []
    columns = conn.execute(
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns c "
        "join information_schema.tables t using (table_schema, table_name) "
        "where t.table_type = 'BASE TABLE' and c.data_type = any(%s) "
        "and c.table_schema not in ('pg_catalog', 'information_schema', 'pg_toast')",
        (list(TEXT_TYPES),),
    ).fetchall()
    for schema, table, column in columns:
        query = q.SQL("select count(*) from {}.{} where {}::text ilike any(%s)").format(
            q.Identifier(schema), q.Identifier(table), q.Identifier(column)
        )
        count = conn.execute(query, ([f"%{n}%" for n in needles],)).fetchone()[0]
        if count:
            found.append(f"{schema}.{table}.{column}: {count}")
    views = conn.execute(
        "select table_schema, table_name from information_schema.views "
        "where table_schema not in ('pg_catalog', 'information_schema')"
    ).fetchall()
    for schema, view in views:
        query = q.SQL("select count(*) from {}.{} v where v::text ilike any(%s)").format(
            q.Identifier(schema), q.Identifier(view)
        )
        count = conn.execute(query, ([f"%{n}%" for n in needles],)).fetchone()[0]
        if count:
            found.append(f"view {schema}.{view}: {count}")
    return found


def test_erasure_leaves_nothing_naming_the_person(
    services, repo, storage, sql, alice, bob, api_url, relay_secret_key
) -> None:
    # A life on the service: a trained voice, dataset files, a conversion, uploads that took
    # rate tokens, events delivered (one ignored, which the operators' log keeps), an
    # operator's action on the account.
    made = voice_with_files(repo, storage, alice.id, "a life")
    voice_with_files(repo, storage, bob.id, "bob's")
    for name in ("one.wav", "two.wav"):
        ticket = alice.client.post(
            f"/profiles/{made['profile_id']}/dataset/uploads",
            json={"filename": name, "content_type": "audio/wav", "size_bytes": 1000},
        )
        assert ticket.status_code == 201, ticket.text
    for key in sorted(objects(storage, alice.id))[:3]:
        info = storage.head(key)
        deliver(api_url, relay_secret_key, r2_event(services.settings.s3_bucket, key, info.etag))
    stray = f"vc/users/{alice.id}/profiles/{made['profile_id']}/unknown/thing.wav"
    deliver(api_url, relay_secret_key, r2_event(services.settings.s3_bucket, stray, "e", 5))
    sql.execute("select ops.disable_user(%s, 'Checking a report.')", (alice.id,))
    sql.execute("select ops.enable_user(%s, 'Report was wrong.')", (alice.id,))
    needles = [str(alice.id), alice.email]
    assert len(_mentions(sql, needles)) > 5, "the arrangement names alice in many places"
    bob_before = _mentions(sql, [str(bob.id)])

    erased = alice.client.request("DELETE", "/me", json=ERASE)

    assert erased.status_code == 200, erased.text
    assert _mentions(sql, needles) == []
    assert objects(storage, alice.id) == set()
    assert _mentions(sql, [str(bob.id)]) == bob_before, "nobody else's data is touched"


def test_a_disabled_account_can_still_erase_its_data(repo, storage, sql, alice) -> None:
    voice_with_files(repo, storage, alice.id, "disabled")
    sql.execute("select ops.disable_user(%s, 'Abuse report.')", (alice.id,))
    assert alice.client.get("/profiles").status_code == 403
    erased = alice.client.request("DELETE", "/me", json=ERASE)
    assert erased.status_code == 200, erased.text
    assert erased.json()["profiles"] == 1
    assert objects(storage, alice.id) == set()


def test_a_storage_outage_is_a_503_and_the_retry_finishes(
    services, repo, storage, sql, alice
) -> None:
    voice_with_files(repo, storage, alice.id, "outage")
    before = objects(storage, alice.id)
    # The API as it runs when the object store does not answer: nothing listens there.
    down = Storage(
        services.settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    )
    outage = replace(services, storage=down)
    outage.dispatcher, outage.events = services.dispatcher, services.events  # not init fields
    server = ThreadedServer(create_app(services=outage), free_port())
    server.start()
    try:
        failed = httpx.request(
            "DELETE",
            f"{server.url}/me",
            json=ERASE,
            headers={"Authorization": alice.client.headers["Authorization"]},
            timeout=120,
        )
    finally:
        server.stop()
    assert failed.status_code == 503, failed.text
    assert int(failed.headers["Retry-After"]) >= 1
    assert failed.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert objects(storage, alice.id) == before, "the files are still there to delete"
    account = "select count(*) from auth.users where id = %s"
    assert sql.execute(account, (alice.id,)).fetchone()[0] == 1, "kept until the retry"

    retried = alice.client.request("DELETE", "/me", json=ERASE)
    assert retried.status_code == 200, retried.text
    assert objects(storage, alice.id) == set()
    assert sql.execute(account, (alice.id,)).fetchone()[0] == 0
    assert _mentions(sql, [str(alice.id)]) == []
