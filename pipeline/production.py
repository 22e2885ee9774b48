"""Refuses, at start-up, production settings that would only fail later or leak.

With `VC_DISPATCH=modal` the process is a deployment, and a setting still at its local
default (a database or bucket on localhost, the local S3 secret, no webhook key, no CORS
origin) means a secret was not attached or a variable was misspelt. Each trust zone holds
only its own secrets, so each checks only what it uses:

- `web`: the API endpoint (database, Supabase Auth, S3 with the browser's host, CORS, and
  the webhook keys when notifications are pushed);
- `worker`: train, convert and the probe (the worker database login and S3);
- `service`: the crons' services (the service database login and S3);
- `queue`: the queue puller (the Cloudflare Queue settings when notifications are pulled).

`VC_ALLOW_LOCAL_URLS=true` accepts hosts on this machine (and only that), for running the
deployed code against a local stack, as the container-faithful test does.

All problems are reported together, each naming its variable, so one failed start is enough
to fix the secret.
"""

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pipeline.settings import Settings

Zone = Literal["web", "worker", "service", "queue"]
LOCAL_S3_SECRET = "local-secret"  # noqa: S105 - the local default this guard refuses


@dataclass(frozen=True)
class Problem:
    variable: str
    reason: str
    local: bool = False  # a host on this machine (VC_ALLOW_LOCAL_URLS accepts those)


class ProductionSettingsError(ValueError):
    """The settings cannot run in production; `problems` names each variable at fault."""

    def __init__(self, zone: Zone, problems: list[Problem]) -> None:
        self.zone, self.problems = zone, problems
        lines = "\n".join(f"  - {p.variable}: {p.reason}" for p in problems)
        super().__init__(
            f"These settings cannot run in production (VC_DISPATCH=modal, {zone}):\n{lines}"
        )


def is_local_host(host: str | None) -> bool:
    """True for a host that names this machine (or none at all: a Unix socket)."""
    if not host or host.startswith("/"):
        return True
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _http_is_local(url: str) -> bool:
    return is_local_host(urlsplit(url).hostname)


def _postgres_is_local(url: str) -> bool:
    from psycopg.conninfo import conninfo_to_dict

    try:
        hosts = str(conninfo_to_dict(url).get("host") or "")
    except Exception:  # an unparsable URL fails later anyway; say so now
        return True
    return any(is_local_host(h.strip()) for h in hosts.split(",")) if hosts else True


def _local(variable: str, what: str) -> Problem:
    return Problem(variable, f"points at this machine; set it to the production {what}", True)


def _database(settings: Settings, worker: bool) -> list[Problem]:
    if settings.db_transport == "supabase":
        problems = []
        if settings.supabase_service_role_key is None:
            problems.append(
                Problem("VC_SUPABASE_SERVICE_ROLE_KEY", "is required with VC_DB_TRANSPORT=supabase")
            )
        if _http_is_local(settings.supabase_url):
            problems.append(_local("VC_SUPABASE_URL", "Supabase project URL"))
        return problems
    if worker and settings.worker_database_url is not None:
        if _postgres_is_local(settings.worker_database_url):
            return [_local("VC_WORKER_DATABASE_URL", "worker (svc_worker) connection string")]
        return []
    if _postgres_is_local(settings.database_url):
        return [_local("VC_DATABASE_URL", "database connection string")]
    return []


def _storage(settings: Settings, browser: bool) -> list[Problem]:
    problems = []
    if _http_is_local(settings.s3_endpoint_url):
        problems.append(_local("VC_S3_ENDPOINT_URL", "R2 endpoint"))
    if (
        browser
        and settings.s3_public_endpoint_url
        and _http_is_local(settings.s3_public_endpoint_url)
    ):
        problems.append(_local("VC_S3_PUBLIC_ENDPOINT_URL", "host browsers upload to"))
    if settings.s3_secret_access_key.get_secret_value() in {"", LOCAL_S3_SECRET}:
        problems.append(
            Problem("VC_S3_SECRET_ACCESS_KEY", "is the local default; set the R2 API token's")
        )
    return problems


def _web(settings: Settings) -> list[Problem]:
    problems = []
    if _http_is_local(settings.supabase_url):
        problems.append(_local("VC_SUPABASE_URL", "Supabase project URL (it locates the JWKS)"))
    if settings.jwt_issuer and _http_is_local(settings.jwt_issuer):
        problems.append(_local("VC_JWT_ISSUER", "token issuer"))
    if not settings.cors_origins:
        problems.append(Problem("VC_CORS_ORIGINS", "is empty; list the site's origin(s)"))
    elif local := [o for o in settings.cors_origins if _http_is_local(o)]:
        names = ", ".join(local)
        problems.append(Problem("VC_CORS_ORIGINS", f"names this machine ({names})", True))
    if settings.event_delivery == "push" and not (
        settings.webhook_secret or settings.webhook_public_key
    ):
        problems.append(
            Problem(
                "VC_WEBHOOK_PUBLIC_KEY",
                "is required (or VC_WEBHOOK_SECRET) while VC_EVENT_DELIVERY=push: without a"
                " key every notification is refused",
            )
        )
    return problems


def _queue(settings: Settings) -> list[Problem]:
    if settings.event_delivery != "pull":
        return []
    problems = [
        Problem(variable, "is required while VC_EVENT_DELIVERY=pull")
        for variable, value in (
            ("VC_CF_ACCOUNT_ID", settings.cf_account_id),
            ("VC_CF_QUEUE_ID", settings.cf_queue_id),
            ("VC_CF_API_TOKEN", settings.cf_api_token),
        )
        if not value
    ]
    if _http_is_local(settings.cf_api_base_url):
        problems.append(_local("VC_CF_API_BASE_URL", "Cloudflare API"))
    return problems


def production_problems(settings: Settings, zone: Zone) -> list[Problem]:
    """What stops `settings` from running `zone` in production (nothing when not deployed)."""
    if settings.dispatch != "modal":
        return []
    if zone == "queue":
        problems = _queue(settings)
    else:
        problems = _database(settings, worker=zone == "worker")
        problems += _storage(settings, browser=zone == "web")
        if zone == "web":
            problems += _web(settings)
    if settings.allow_local_urls:
        problems = [p for p in problems if not p.local]
    return problems


def require_production_ready(settings: Settings, zone: Zone) -> None:
    """Raises `ProductionSettingsError` naming every variable at fault, if any."""
    if problems := production_problems(settings, zone):
        raise ProductionSettingsError(zone, problems)
