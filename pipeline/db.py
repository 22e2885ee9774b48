"""Calls the database's named SQL functions; every rule lives there
(docs/architecture.md, "The database is the brain").

One interface, `Database.call(fn, **args)`, with two transports:
- `PostgresDatabase`: psycopg 3 pool; no server-side prepared statements, so it works through
  Supabase's transaction pooler as well as against a plain Postgres.
- `SupabaseDatabase`: PostgREST `rpc()` with the service-role key, for deployments that only
  hand a function the project URL and key.
Python argument `x` becomes SQL argument `p_x`; every function returns JSON.
"""

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from pipeline.errors import PipelineError, Unavailable
from pipeline.settings import Settings

_FUNCTION_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class Database(Protocol):
    def call(self, fn: str, /, **args: Any) -> Any: ...

    def close(self) -> None: ...


def domain_error(code: str | None, hint: str | None, detail: Any) -> PipelineError:
    """Rebuilds the error a SQL function raised (code as message, hint, JSON detail)."""
    details = detail
    if isinstance(detail, str):
        try:
            details = json.loads(detail)
        except ValueError:
            details = {"detail": detail}
    if not isinstance(details, dict):
        details = {}
    return PipelineError(code or "INTERNAL", hint or "The request could not be completed.", details)


def _check_name(fn: str) -> str:
    if not _FUNCTION_NAME.match(fn):
        raise ValueError(f"not a SQL function name: {fn!r}")
    return fn


class PostgresDatabase:
    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0
    ) -> None:
        from psycopg_pool import ConnectionPool

        # prepare_threshold=None: PgBouncer in transaction mode cannot keep prepared statements.
        # check: a pooled connection the server closed (a restart, an upgrade, a pooler
        # dropping idle links, `pg_terminate_backend`) is found and replaced at checkout,
        # not handed to a request that would then answer 503 with the database up.
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": None},
            check=ConnectionPool.check_connection,
            timeout=timeout,  # waiting for a connection; then Unavailable (503)
            open=True,
        )

    def call(self, fn: str, /, **args: Any) -> Any:
        import psycopg
        from psycopg import sql
        from psycopg.types.json import Jsonb

        named = sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(f"p_{k}"), sql.Placeholder(k)) for k in args
        )
        query = sql.SQL("select public.{}({})").format(sql.Identifier(_check_name(fn)), named)
        params = {k: Jsonb(v) if isinstance(v, Mapping | list) else v for k, v in args.items()}
        try:
            with self._pool.connection() as conn:
                row = conn.execute(query, params).fetchone()
        except psycopg.errors.RaiseException as exc:
            diag = exc.diag
            raise domain_error(
                diag.message_primary, diag.message_hint, diag.message_detail
            ) from exc
        except psycopg.errors.IntegrityError as exc:
            raise PipelineError(
                "INVALID_ARGUMENT", "That conflicts with something that already exists."
            ) from exc
        except (psycopg.OperationalError, TimeoutError) as exc:
            raise Unavailable("The database is unavailable. Please try again.") from exc
        return row[0] if row else None

    def stats(self) -> dict[str, int]:
        """The pool's counters since it opened (psycopg_pool's `get_stats`: connections in
        use and idle, requests that had to wait for one and for how long in total); the load
        bench reads them to tell a pool wait from a slow query."""
        return self._pool.get_stats()

    def close(self) -> None:
        self._pool.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class SupabaseDatabase:
    def __init__(self, url: str, service_role_key: str) -> None:
        from supabase import create_client

        self._client = create_client(url, service_role_key)

    def call(self, fn: str, /, **args: Any) -> Any:
        import httpx
        from postgrest.exceptions import APIError

        params = {f"p_{k}": _jsonable(v) for k, v in args.items()}
        try:
            return self._client.rpc(_check_name(fn), params).execute().data
        except APIError as exc:
            if exc.code == "P0001":
                raise domain_error(exc.message, exc.hint, exc.details) from exc
            raise Unavailable("The database refused the request.", {"code": exc.code}) from exc
        except httpx.HTTPError as exc:
            raise Unavailable("The database is unavailable. Please try again.") from exc

    def close(self) -> None:
        return None


def connect_database(settings: Settings, *, worker: bool = False) -> Database:
    """The service's database, or with `worker` the worker login (`svc_worker`), which may
    execute only what train, convert and the probe call. The `supabase` transport has one
    key, the service role's, for both."""
    if settings.db_transport == "supabase":
        if settings.supabase_service_role_key is None:
            raise ValueError("VC_SUPABASE_SERVICE_ROLE_KEY is required for the supabase transport")
        return SupabaseDatabase(
            settings.supabase_url, settings.supabase_service_role_key.get_secret_value()
        )
    url = settings.worker_login_url if worker else settings.database_url
    return PostgresDatabase(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
