"""The trust zones a deployment's credentials are split into, one Modal secret each.

A GPU or probe container decodes hostile audio with native libraries; if one is ever taken
over it should find S3 and a database login that may only run the worker functions, never
the token-signing secret, the webhook keys or the Cloudflare token. So every Modal function
gets the secrets of its zones only, Modal checks each secret holds its `required` keys when
the app deploys, and a container refuses to start when its secrets hold a credential that
belongs to a zone it is not in (a pasted-in-the-wrong-secret mistake, named in the error).
"""

from collections.abc import Mapping
from dataclasses import dataclass

S3_KEYS = ("VC_S3_ENDPOINT_URL", "VC_S3_BUCKET", "VC_S3_ACCESS_KEY_ID", "VC_S3_SECRET_ACCESS_KEY")
# Credentials that only some zones may hold (each zone's database URL is its own login).
PRIVILEGED_KEYS = (
    "VC_JWT_SECRET",
    "VC_WEBHOOK_SECRET",
    "VC_SUPABASE_SERVICE_ROLE_KEY",
    "VC_CF_API_TOKEN",
)


@dataclass(frozen=True)
class Zone:
    required: tuple[str, ...]  # Modal refuses to deploy when the secret lacks one
    holds: tuple[str, ...] = ()  # which PRIVILEGED_KEYS its secret may carry


ZONES: dict[str, Zone] = {
    # The API: signed-in users (JWKS from the Supabase URL, or the legacy JWT secret),
    # pushed events (webhook keys), presigned URLs (S3) and the service database login.
    "web": Zone(
        required=(*S3_KEYS, "VC_SUPABASE_URL", "VC_CORS_ORIGINS"),
        holds=("VC_JWT_SECRET", "VC_WEBHOOK_SECRET", "VC_SUPABASE_SERVICE_ROLE_KEY"),
    ),
    # train, convert, probe, separate: the bucket and the worker database role, nothing else.
    "worker": Zone(required=(*S3_KEYS, "VC_DATABASE_URL")),
    # The scheduled maintenance (reaper, quota periods, reconciler, retention): the service database
    # login and the bucket; no token, webhook or Cloudflare secrets.
    "service": Zone(required=S3_KEYS, holds=("VC_SUPABASE_SERVICE_ROLE_KEY",)),
    # The Cloudflare Queue pull path: its API token, added to queue_pull only.
    "queue": Zone(
        required=("VC_CF_ACCOUNT_ID", "VC_CF_QUEUE_ID", "VC_CF_API_TOKEN"),
        holds=("VC_CF_API_TOKEN",),
    ),
}

FUNCTION_ZONES: dict[str, tuple[str, ...]] = {
    "web": ("web",),
    "train": ("worker",),
    "convert": ("worker",),
    "probe": ("worker",),
    "singers": ("worker",),
    "separate": ("worker",),
    "instant": ("worker",),
    "quota_reset": ("service",),
    "reaper": ("service",),
    "reconciler": ("service",),
    "retention": ("service",),
    "sweep_work": ("service",),
    "queue_pull": ("service", "queue"),
}


class ZoneError(RuntimeError):
    pass


def foreign_keys(function: str, environ: Mapping[str, str]) -> list[str]:
    """The privileged variables set in `environ` that none of the function's zones may hold."""
    allowed = {key for zone in FUNCTION_ZONES[function] for key in ZONES[zone].holds}
    return [key for key in PRIVILEGED_KEYS if key not in allowed and environ.get(key)]


def check_environment(function: str, environ: Mapping[str, str]) -> None:
    """Refuses to run `function` with another zone's credentials in its environment."""
    foreign = foreign_keys(function, environ)
    if foreign:
        zones = " and ".join(FUNCTION_ZONES[function])
        raise ZoneError(
            f"the {function!r} function (trust zone {zones}) must not hold "
            f"{', '.join(foreign)}: remove them from its Modal secret (docs/deploy.md, step 5)"
        )
