"""Request dependencies: the process's services, the signed-in user, and rate limits."""

from typing import Annotated, Literal

from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.auth import AuthUser
from pipeline.errors import PipelineError, Unauthorized, Unavailable
from pipeline.repository import Repository
from pipeline.services import Services
from pipeline.settings import Settings

_bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_repo(services: Annotated[Services, Depends(get_services)]) -> Repository:
    return services.repo


def signed_in_user(
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthUser:
    """The token's user, whatever the state of their account (erasure needs no more)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Sign in first: this needs an access token.")
    return services.verifier.verify(credentials.credentials)


def current_user(
    services: Annotated[Services, Depends(get_services)],
    user: Annotated[AuthUser, Depends(signed_in_user)],
) -> AuthUser:
    """A signed-in user whose account exists and is not disabled."""
    services.repo.require_enabled_user(user.id)
    return user


ServicesDep = Annotated[Services, Depends(get_services)]
RepoDep = Annotated[Repository, Depends(get_repo)]
UserDep = Annotated[AuthUser, Depends(current_user)]
# A disabled person may still erase their data; a deleted account's retry may finish it.
SignedInDep = Annotated[AuthUser, Depends(signed_in_user)]

UserAction = Literal["upload", "job_start", "cancel"]
_NOUN = {
    "upload": "upload requests",
    "job_start": "job starts",
    "cancel": "cancels",
    "public": "requests",
}


def _limit(settings: Settings, action: str) -> tuple[int, float]:
    return getattr(settings, f"rate_{action}_burst"), getattr(settings, f"rate_{action}_per_minute")


def _take(services: Services, subject: str, action: str) -> None:
    """One token from the shared bucket in the database (the API runs in many containers, so
    an in-process counter would not hold); none left is a 429 with Retry-After."""
    burst, per_minute = _limit(services.settings, action)
    decision = services.repo.take_rate_token(subject, action, burst, per_minute)
    if not decision.allowed:
        wait = decision.retry_after or 1
        raise PipelineError(
            "RATE_LIMITED",
            f"Too many {_NOUN[action]} in a short time. Try again in {wait} seconds.",
            {"action": action, "retry_after": wait, "burst": burst, "per_minute": per_minute},
        )


def rate_limit(action: UserAction) -> params.Depends:
    """A per-user limit for one kind of action; use as `dependencies=[rate_limit("upload")]`."""

    def dependency(user: UserDep, services: ServicesDep) -> None:
        _take(services, f"user:{user.id}", action)

    dependency.rate_limited = True  # type: ignore[attr-defined]  # read by endpoints.openapi
    return Depends(dependency)


def client_ip(request: Request, settings: Settings) -> str:
    """The caller's address: the last value of the edge's header when one is configured (a
    proxy appends, so earlier values are the client's to forge), else the socket peer.

    On Modal the peer is the caller: Modal's web serving puts the caller's address in the ASGI
    scope's `client` and drops an `X-Forwarded-For` the caller sent, so no header is needed,
    and a header that no proxy of ours overwrites would let a caller pick its own bucket."""
    if settings.client_ip_header:
        forwarded = request.headers.get(settings.client_ip_header, "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return request.client.host if request.client else "unknown"


def _public_limit(request: Request, services: ServicesDep) -> None:
    """Fails open when the database is down, so `/health` can still say so."""
    try:
        _take(services, f"ip:{client_ip(request, services.settings)}", "public")
    except Unavailable:
        return


_public_limit.rate_limited = True  # type: ignore[attr-defined]
PublicRateLimit = Depends(_public_limit)
