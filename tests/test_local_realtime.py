"""The local Realtime stand-in, spoken to over a real websocket as realtime-js speaks to
Supabase Realtime (Phoenix serializer 2.0.0), fed by real changes to the local database."""

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from websockets.sync.client import ClientConnection, connect

from pipeline.local.realtime import WEBSOCKET_PATH, parse_filter
from pipeline.local.stack import LocalStack
from pipeline.repository import Repository


class Socket:
    """A Phoenix channel client: numbered refs, and a read that skips other topics' noise."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ref = 0

    def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> str:
        self.ref += 1
        ref = str(self.ref)
        self.ws.send(json.dumps([join_ref or ref, ref, topic, event, payload]))
        return ref

    def read(self, timeout: float = 10) -> list[Any]:
        return json.loads(self.ws.recv(timeout=timeout))

    def reply(self, ref: str) -> list[Any]:
        while True:
            message = self.read()
            if message[1] == ref and message[3] == "phx_reply":
                return message

    def next_event(self, event: str, timeout: float = 10) -> list[Any]:
        while True:
            message = self.read(timeout)
            if message[3] == event:
                return message

    def join(self, topic: str, token: str | None, table: str, filter: str | None) -> list[Any]:
        binding = {"event": "*", "schema": "public", "table": table}
        if filter:
            binding["filter"] = filter
        config = {
            "broadcast": {"ack": False, "self": False},
            "presence": {"key": "", "enabled": False},
            "postgres_changes": [binding],
            "private": False,
        }
        payload: dict[str, Any] = {"config": config}
        if token:
            payload["access_token"] = token
        return self.reply(self.push(topic, "phx_join", payload))


@pytest.fixture
def socket(stack: LocalStack) -> Iterator[Socket]:
    url = f"ws://127.0.0.1:{stack.config.auth_port}{WEBSOCKET_PATH}?apikey=local&vsn=2.0.0"
    with connect(url) as ws:
        yield Socket(ws)


def profiles_of(user_id: UUID) -> str:
    return f"user_id=eq.{user_id}"


def test_heartbeat_is_answered(socket: Socket):
    ref = socket.push("phoenix", "heartbeat", {})
    ok = {"status": "ok", "response": {}}
    assert socket.reply(ref) == [None, ref, "phoenix", "phx_reply", ok]


def test_join_gives_each_binding_an_id_and_pushes_only_own_rows(
    socket: Socket, alice, bob, repo: Repository, sql
):
    joined = socket.join("realtime:mine", alice.token, "voice_profiles", profiles_of(alice.id))
    assert joined[4]["status"] == "ok"
    [binding] = joined[4]["response"]["postgres_changes"]
    assert binding["table"] == "voice_profiles" and binding["filter"] == profiles_of(alice.id)

    theirs = repo.create_profile(bob.id, "Bob's voice")  # not alice's: never reaches her
    mine = repo.create_profile(alice.id, "Alice's voice")

    message = socket.next_event("postgres_changes")
    join_ref, ref, topic, _, payload = message
    assert (join_ref, ref, topic) == (joined[0], None, "realtime:mine")
    assert payload["ids"] == [binding["id"]]
    data = payload["data"]
    assert (data["schema"], data["table"], data["type"]) == ("public", "voice_profiles", "INSERT")
    assert data["record"]["id"] == str(mine.id) and data["record"]["name"] == "Alice's voice"
    assert {"name": "user_id", "type": "uuid"} in data["columns"]
    assert data["commit_timestamp"].endswith("Z")

    repo.delete_profile(alice.id, mine.id)  # a soft delete: an update
    change = socket.next_event("postgres_changes")[4]["data"]
    assert change["type"] == "UPDATE" and change["record"]["deleted_at"]
    assert change["old_record"] == {"id": str(mine.id)}

    for profile in (theirs, mine):  # a delete's old record holds the key alone
        sql.execute("delete from public.voice_profiles where id = %s", (profile.id,))
    change = socket.next_event("postgres_changes")[4]["data"]
    assert (change["type"], change["old_record"]) == ("DELETE", {"id": str(mine.id)})
    assert "record" not in change


def test_rls_decides_even_without_a_filter(socket: Socket, alice, bob, repo: Repository):
    """Subscribed to the whole table, a user still hears only of rows RLS lets them read."""
    assert socket.join("realtime:all", alice.token, "voice_profiles", None)[4]["status"] == "ok"
    repo.create_profile(bob.id, "Bob's")
    repo.create_profile(alice.id, "Alice's")
    record = socket.next_event("postgres_changes")[4]["data"]["record"]
    assert record["user_id"] == str(alice.id) and record["name"] == "Alice's"


def test_without_a_token_nothing_is_visible(socket: Socket, alice, repo: Repository):
    """No access token means the anon role, which the tables grant nothing."""
    assert socket.join("realtime:anon", None, "voice_profiles", None)[4]["status"] == "ok"
    repo.create_profile(alice.id, "Hidden")
    ref = socket.push("phoenix", "heartbeat", {})
    assert socket.next_event("phx_reply")[1] == ref  # the heartbeat's reply, no change before it


def test_a_bad_token_is_refused_at_join(socket: Socket):
    reply = socket.join("realtime:bad", "not-a-jwt", "voice_profiles", None)
    assert reply[4]["status"] == "error"
    assert "malformed" in reply[4]["response"]["reason"]


def test_an_invalid_filter_is_refused_at_join(socket: Socket, alice):
    reply = socket.join("realtime:f", alice.token, "voice_profiles", "user_id=like.x")
    assert reply[4]["status"] == "error"
    assert "invalid filter" in reply[4]["response"]["reason"]


def test_leave_stops_the_pushes(socket: Socket, alice, repo: Repository, stack: LocalStack):
    joined = socket.join("realtime:gone", alice.token, "voice_profiles", profiles_of(alice.id))
    assert stack.realtime is not None and stack.realtime.subscribed(alice.id, "voice_profiles") == 1
    ref = socket.push("realtime:gone", "phx_leave", {}, join_ref=joined[0])
    assert socket.reply(ref)[4] == {"status": "ok", "response": {}}
    assert stack.realtime.subscribed(alice.id, "voice_profiles") == 0
    repo.create_profile(alice.id, "After leaving")
    ref = socket.push("phoenix", "heartbeat", {})
    assert socket.next_event("phx_reply")[1] == ref


def test_an_access_token_update_switches_whose_rows_arrive(
    socket: Socket, alice, bob, repo: Repository
):
    """realtime-js pushes `access_token` when the session's token changes; the channel then
    sees rows as the new token's user, and a bad token closes it."""
    joined = socket.join("realtime:t", alice.token, "voice_profiles", None)
    socket.push("realtime:t", "access_token", {"access_token": bob.token}, join_ref=joined[0])
    ref = socket.push("phoenix", "heartbeat", {})  # the update is handled before this reply
    socket.reply(ref)
    repo.create_profile(alice.id, "Alice's")
    repo.create_profile(bob.id, "Bob's")
    assert socket.next_event("postgres_changes")[4]["data"]["record"]["name"] == "Bob's"

    socket.push("realtime:t", "access_token", {"access_token": "garbage"}, join_ref=joined[0])
    system = socket.next_event("system")
    assert system[4]["status"] == "error"
    assert socket.next_event("phx_close")[2] == "realtime:t"


def test_filters_parse_as_realtime_writes_them():
    assert parse_filter("user_id=eq.abc") == ("user_id", "eq", "abc")
    assert parse_filter("status=in.(queued,running)") == ("status", "in", "(queued,running)")
    with pytest.raises(ValueError, match="invalid filter"):
        parse_filter("user_id")
