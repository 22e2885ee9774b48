"""What a log line or a bookkeeping row may say about a person: never their user id, email or
file names.

Logs we ship (Modal keeps them) cannot be erased per person, and `DELETE /me` promises that a
person's data goes from everything we own. An object key names its user and, for a dataset
file, the file's name (`vc/users/<user>/profiles/<profile>/dataset/<file>/<name>`), so a key
is logged as its kind and the id of the row it belongs to (`dataset:<file id>`): enough to
find the row while it exists, and nothing once the row is erased. A user id is logged as a
short keyed hash whose key lives only in this process's memory: the lines of one process
about one person still read together, and no one can map them back to the person.

`install()` puts `text()` in front of every log record of the process as a safety net for
what a call site did not redact itself: an exception's message quoting a key or an email, or
a database error quoting the key of the row it refused (its user id and, say, a profile's
name).
"""

import hashlib
import hmac
import logging
import re
import secrets
from typing import Any
from uuid import UUID

from pipeline import keys

_PROCESS_KEY = secrets.token_bytes(32)
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Anything under a user's prefix, up to a quote, whitespace or a bracket.
_KEY_IN_TEXT = re.compile(rf"vc/users/{_UUID}(?:/[^\s'\"<>()\[\]{{}},;]*)?")
# Not after a character an address could hold: each run of them is tried once, not per start.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Postgres quotes the key of a row it refuses: `Key (user_id, lower(btrim(name)))=(<uuid>,
# <text>) already exists`. Columns nest parentheses (two levels here), values are anything up
# to the last of Postgres's own endings on the line (a name holding one of them makes the
# values miscount, and then all are withheld); both bounded, so a long line costs linear time.
_PG_COLUMNS = r"[^()\n]*(?:\([^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)[^()\n]*)*"
_PG_KEY = re.compile(
    rf"Key \(({_PG_COLUMNS})\)=\((.{{0,1000}})\)"
    r"(?= already exists| is not present| is still referenced| conflicts with)"
)
# A check or not-null violation quotes the whole row: none of it is shown.
_PG_ROW = re.compile(r"Failing row contains \([^\n]*")
# A UUID that says it is a user's: `user_id=<uuid>`, `"user_id" : "<uuid>"`, `user <uuid>`,
# `user_id=UUID('<uuid>')`, `X-User-Id: <uuid>`.
_USER_UUID = re.compile(
    rf"(\b(?:user|owner)(?:[_-]?id)?\b\W{{0,6}}(?:UUID\(['\"])?)({_UUID})", re.IGNORECASE
)
_USER_COLUMNS = {"user_id", "owner_id", "owner"}
_FULL_UUID = re.compile(_UUID)
# Already safe to show: a hashed user, a redacted key (`dataset:<id>`), a number.
_SHOWN = re.compile(rf"(?:user|key):[0-9a-f]{{12}}|[a-z_]+:{_UUID}|-?\d+(?:\.\d+)?")
_INSTALLED = "_svc_redacting_factory"


def digest(value: str) -> str:
    """A stable SHA-256 (hex) of an identifier that must be compared, never read: the events'
    dedupe ids (`pipeline.events.dedupe_id`). An object key holds a random UUID, so its hash
    cannot be reversed without already knowing the key."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def user(user_id: UUID | str) -> str:
    """`user:<12 hex>`: keyed by this process's secret, so the same person reads the same in
    this process's lines and cannot be looked up from them."""
    mac = hmac.new(_PROCESS_KEY, str(user_id).lower().encode(), hashlib.sha256)
    return f"user:{mac.hexdigest()[:12]}"


def key(object_key: str | None) -> str:
    """An object key as `<kind>:<row id>` (`dataset:<file id>`); a key outside the layout as
    `key:<12 hex>` (keyed as `user` is), since it may hold anything."""
    if object_key is None:
        return "key:none"
    parsed = keys.parse_key(object_key)
    if parsed is not None:
        return f"{parsed.kind}:{parsed.object_id}"
    mac = hmac.new(_PROCESS_KEY, object_key.encode("utf-8", "replace"), hashlib.sha256)
    return f"key:{mac.hexdigest()[:12]}"


def text(message: str) -> str:
    """Free text (an exception's message, a formatted log line) with every object key under a
    user's prefix, every UUID said to be a user's, the values of a key Postgres quotes and
    every email address replaced."""
    message = _KEY_IN_TEXT.sub(lambda m: key(m.group(0)), message)
    message = _PG_KEY.sub(_database_key, message)
    message = _PG_ROW.sub("Failing row contains (<withheld>)", message)
    message = _USER_UUID.sub(lambda m: m.group(1) + user(m.group(2)), message)
    return _EMAIL.sub("<email>", message)


def _database_key(match: re.Match[str]) -> str:
    """A refused row's key as Postgres quotes it, each value by what its column holds: a
    user's id hashed as `user` hashes it, a row's own id, a number or an already redacted
    value kept (they name no one), anything else (a file's name, a profile's) withheld.
    Idempotent: a line redacted twice (a call site's `text`, then the log hook's) reads the
    same, so one person's lines still read together."""
    columns = [c.strip() for c in match.group(1).split(",")]
    values = [v.strip() for v in match.group(2).split(",")]
    if len(columns) != len(values):  # a value with a comma in it: withhold them all
        return f"Key ({match.group(1)})=(<withheld>)"
    shown = [_database_value(c, v) for c, v in zip(columns, values, strict=True)]
    return f"Key ({match.group(1)})=({', '.join(shown)})"


def _database_value(column: str, value: str) -> str:
    if _FULL_UUID.fullmatch(value):
        return user(value) if column in _USER_COLUMNS else value
    if _SHOWN.fullmatch(value):
        return value
    return "<withheld>"


def install() -> None:
    """Redacts every log record this process makes from now on (idempotent): its message and
    its exception's text, formatted once here, before any handler sees them."""
    current = logging.getLogRecordFactory()
    if getattr(current, _INSTALLED, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            formatted = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error report
            return record
        redacted = text(formatted)
        if redacted != formatted:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = text(logging.Formatter().formatException(record.exc_info))
        return record

    setattr(factory, _INSTALLED, True)
    logging.setLogRecordFactory(factory)
