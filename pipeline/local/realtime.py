"""A local stand-in for Supabase Realtime's `postgres_changes`, so the page served by the local
stack gets live updates through the same supabase-js code as in production.

It speaks the Phoenix channel protocol as realtime-js speaks it (serializer `vsn` 2.0.0, JSON
arrays `[join_ref, ref, topic, event, payload]`, and 1.0.0 objects): `heartbeat` on the
`phoenix` topic, `phx_join` with the `postgres_changes` bindings and an access token, whose
reply gives each binding the id the server's pushes carry, `phx_leave`, `access_token` updates,
and `postgres_changes` pushes shaped as realtime-js reads them. Changes come from triggers
(`realtime.sql`) that queue each change to a published table and NOTIFY; whether a subscriber
may see a row is asked of Postgres itself, as that subscriber (`authenticated` with its JWT
claims), so the tables' own RLS policies decide, as they do in Realtime. Deletes go to the
row's owner only (hosted Realtime does not check RLS on deletes; nothing here needs more).

Not implemented: broadcast, presence, private channels, and `select` column lists.
"""

import asyncio
import contextlib
import itertools
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pipeline.auth import AuthUser
from pipeline.errors import Unauthorized

SQL = Path(__file__).with_name("realtime.sql")
WEBSOCKET_PATH = "/realtime/v1/websocket"
CHANNEL = "local_realtime"
APP_NAME = "local-realtime"  # how its two database connections name themselves
FILTER_OPS = {"eq", "neq", "in"}
Verify = Callable[[str], AuthUser]
log = logging.getLogger(__name__)


def apply_realtime_feed(url: str) -> None:
    """Installs the change triggers; run after the migrations (they create the tables)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL.read_text())


class Change(BaseModel):
    """One row of `local_realtime.changes`: a change as Realtime describes it."""

    id: int
    schema_name: str
    table_name: str
    type: str
    record: dict[str, Any] | None
    old_record: dict[str, Any] | None
    columns: list[dict[str, str]]
    owner: UUID | None
    commit_timestamp: datetime

    def data(self) -> dict[str, Any]:
        """The `data` of a `postgres_changes` push, field for field what realtime-js reads."""
        stamp = self.commit_timestamp.isoformat().replace("+00:00", "Z")
        body: dict[str, Any] = {
            "schema": self.schema_name,
            "table": self.table_name,
            "commit_timestamp": stamp,
            "type": self.type,
            "columns": self.columns,
            "errors": None,
        }
        if self.record is not None:
            body["record"] = self.record
        if self.old_record is not None:
            body["old_record"] = self.old_record
        return body


@dataclass(frozen=True)
class Binding:
    """One `postgres_changes` binding a channel joined with, and the id its pushes carry."""

    id: int
    event: str
    schema: str
    table: str
    filter: str | None

    def matches(self, change: Change) -> bool:
        if self.event not in ("*", change.type) or self.schema not in ("*", change.schema_name):
            return False
        if self.table not in (None, "*", change.table_name):
            return False
        if not self.filter or change.type == "DELETE":  # a delete's old record has only the key
            return True
        column, op, value = parse_filter(self.filter)
        actual = (change.record or {}).get(column)
        text = "" if actual is None else str(actual)
        if op == "eq":
            return actual is not None and text == value
        if op == "neq":
            return actual is not None and text != value
        return text in value.strip("()").split(",")

    def reply(self) -> dict[str, Any]:
        body = {"id": self.id, "event": self.event, "schema": self.schema, "table": self.table}
        return body | ({"filter": self.filter} if self.filter else {})


def parse_filter(text: str) -> tuple[str, str, str]:
    """`column=op.value` as Realtime accepts it (eq, neq, in); ValueError otherwise."""
    column, _, rest = text.partition("=")
    op, _, value = rest.partition(".")
    if not column or op not in FILTER_OPS or not value:
        raise ValueError(f"invalid filter {text!r}: expected column=eq.value")
    return column, op, value


@dataclass
class Channel:
    topic: str
    join_ref: str | None
    bindings: list[Binding]
    claims: dict[str, Any] | None  # None: the anon role, as with no access token


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    vsn: str
    channels: dict[str, Channel] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> None:
        if self.vsn.startswith("1."):
            message: Any = {
                "join_ref": join_ref,
                "ref": ref,
                "topic": topic,
                "event": event,
                "payload": payload,
            }
        else:
            message = [join_ref, ref, topic, event, payload]
        async with self.lock:
            await self.websocket.send_text(json.dumps(message, default=str))

    def decode(self, text: str) -> tuple[Any, Any, str, str, Any]:
        message = json.loads(text)
        if isinstance(message, dict):
            return (
                message.get("join_ref"),
                message.get("ref"),
                message["topic"],
                message["event"],
                message.get("payload"),
            )
        join_ref, ref, topic, event, payload = message
        return join_ref, ref, topic, event, payload


class RealtimeStandIn:
    """The websocket endpoint plus the task that turns queued changes into pushes."""

    def __init__(self, database_url: str, verify: Verify) -> None:
        self.database_url = database_url
        self.verify = verify
        self.connections: set[Connection] = set()
        self.joins: Counter[tuple[str, str]] = Counter()  # (user id, table): joins so far
        self._ids = itertools.count(1)

    # What tests and the CLI may ask -----------------------------------------------------

    def subscribed(self, user_id: UUID | str, table: str) -> int:
        """How many joined channels listen to `table` as this user right now."""
        return sum(
            1
            for connection in list(self.connections)
            for channel in list(connection.channels.values())
            if channel.claims
            and channel.claims.get("sub") == str(user_id)
            and any(b.table == table for b in channel.bindings)
        )

    # Serving --------------------------------------------------------------------------

    def app(self, *mounts: Any) -> Starlette:
        """This endpoint, beside other routes of the Supabase stand-in (the token issuer)."""
        return Starlette(
            routes=[WebSocketRoute(WEBSOCKET_PATH, self.serve), *mounts], lifespan=self.lifespan
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        checker = await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, application_name=APP_NAME
        )
        listener = asyncio.create_task(self._listen(checker))
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await checker.close()

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        connection = Connection(websocket, websocket.query_params.get("vsn", "1.0.0"))
        self.connections.add(connection)
        try:
            while True:
                text = await websocket.receive_text()
                try:
                    join_ref, ref, topic, event, payload = connection.decode(text)
                except (ValueError, KeyError, TypeError):
                    continue  # Phoenix drops a frame it cannot decode
                await self._handle(connection, join_ref, ref, topic, event, payload or {})
        except WebSocketDisconnect:
            pass
        finally:
            self.connections.discard(connection)

    async def _handle(
        self, conn: Connection, join_ref: Any, ref: Any, topic: str, event: str, payload: Any
    ) -> None:
        if topic == "phoenix" and event == "heartbeat":
            await conn.send(None, ref, topic, "phx_reply", {"status": "ok", "response": {}})
        elif event == "phx_join":
            await self._join(conn, join_ref, ref, topic, payload)
        elif topic not in conn.channels:
            reply = {"status": "error", "response": {"reason": "unmatched topic"}}
            await conn.send(join_ref, ref, topic, "phx_reply", reply)
        elif event == "phx_leave":
            conn.channels.pop(topic, None)
            await conn.send(join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {}})
        elif event == "access_token":
            await self._refresh_token(conn, conn.channels[topic], payload.get("access_token"))

    async def _join(self, conn: Connection, join_ref: Any, ref: Any, topic: str, body: Any) -> None:
        config = body.get("config") or {}
        try:
            claims = await self._claims(body.get("access_token"))
            bindings = [self._binding(b) for b in config.get("postgres_changes") or []]
        except (Unauthorized, ValueError) as exc:
            reason = exc.message if isinstance(exc, Unauthorized) else str(exc)
            reply = {"status": "error", "response": {"reason": reason}}
            await conn.send(join_ref, ref, topic, "phx_reply", reply)
            return
        conn.channels[topic] = Channel(topic, join_ref, bindings, claims)
        for binding in bindings:
            self.joins[(str((claims or {}).get("sub")), binding.table)] += 1
        response = {"postgres_changes": [b.reply() for b in bindings]}
        await conn.send(join_ref, ref, topic, "phx_reply", {"status": "ok", "response": response})
        if bindings:
            system = {
                "message": "Subscribed to PostgreSQL",
                "status": "ok",
                "extension": "postgres_changes",
                "channel": topic.removeprefix("realtime:"),
            }
            await conn.send(join_ref, None, topic, "system", system)

    async def _refresh_token(self, conn: Connection, channel: Channel, token: Any) -> None:
        """A new token replaces the channel's claims; a bad one closes the channel."""
        try:
            channel.claims = await self._claims(token)
        except Unauthorized as exc:
            conn.channels.pop(channel.topic, None)
            system = {
                "message": exc.message,
                "status": "error",
                "extension": "system",
                "channel": channel.topic.removeprefix("realtime:"),
            }
            await conn.send(channel.join_ref, None, channel.topic, "system", system)
            await conn.send(channel.join_ref, channel.join_ref, channel.topic, "phx_close", {})

    async def _claims(self, token: Any) -> dict[str, Any] | None:
        if not token:
            return None
        if not isinstance(token, str):
            raise Unauthorized("The access token is malformed.")
        # in a thread: the verifier may fetch the JWKS from this very server
        user = await asyncio.to_thread(self.verify, token)
        return {"sub": str(user.id), "role": user.role, "email": user.email}

    def _binding(self, raw: Any) -> Binding:
        if not isinstance(raw, dict):
            raise ValueError("a postgres_changes binding must be an object")
        event = str(raw.get("event", "*")).upper()
        if event not in ("*", "INSERT", "UPDATE", "DELETE"):
            raise ValueError(f"invalid event {event!r}")
        if raw.get("filter"):
            parse_filter(str(raw["filter"]))
        return Binding(
            next(self._ids),
            "*" if event == "*" else event,
            str(raw.get("schema", "public")),
            raw.get("table"),
            raw.get("filter") or None,
        )

    # The feed ---------------------------------------------------------------------------

    async def _listen(self, checker: psycopg.AsyncConnection) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, application_name=APP_NAME
        ) as listener:
            await listener.execute(f"listen {CHANNEL}")
            await self._drain(checker)  # what changed before this started
            # the listener cannot run queries while it waits: the other connection reads
            async for _ in listener.notifies():
                await self._drain(checker)

    async def _drain(self, checker: psycopg.AsyncConnection) -> None:
        async with checker.cursor(row_factory=dict_row) as cur:
            await cur.execute("delete from local_realtime.changes returning *")
            rows = await cur.fetchall()
        for row in sorted(rows, key=lambda r: r["id"]):
            try:
                await self._deliver(Change.model_validate(row), checker)
            except Exception:  # one bad change must not end the feed
                log.exception("local realtime: could not deliver change %s", row["id"])

    async def _deliver(self, change: Change, checker: psycopg.AsyncConnection) -> None:
        for conn in list(self.connections):
            for channel in list(conn.channels.values()):
                ids = [b.id for b in channel.bindings if b.matches(change)]
                if ids and await self._visible(checker, channel.claims, change):
                    payload = {"ids": ids, "data": change.data()}
                    with contextlib.suppress(Exception):  # a closing socket misses it
                        await conn.send(
                            channel.join_ref, None, channel.topic, "postgres_changes", payload
                        )

    async def _visible(
        self, checker: psycopg.AsyncConnection, claims: dict[str, Any] | None, change: Change
    ) -> bool:
        """Asks Postgres, as the subscriber, whether RLS lets it see the changed row."""
        if change.type == "DELETE":
            return claims is not None and claims["sub"] == str(change.owner)
        row_id = (change.record or {}).get("id")
        if row_id is None:  # every published table has an `id` key; without one, nobody hears
            return False
        role = "authenticated" if claims else "anon"
        query = sql.SQL("select exists (select 1 from {}.{} where id = %s)").format(
            sql.Identifier(change.schema_name), sql.Identifier(change.table_name)
        )
        try:
            async with checker.transaction():
                await checker.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
                await checker.execute(
                    "select set_config('request.jwt.claims', %s, true)",
                    (json.dumps(claims or {"role": "anon"}),),
                )
                cursor = await checker.execute(query, (row_id,))
                row = await cursor.fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return False
        return bool(row and row[0])
