"""Verifies Supabase access tokens: asymmetric keys from the project's JWKS (ES256/RS256),
or the legacy shared HS256 secret when one is configured.

The algorithm is chosen by the key, never by the token: an HS256 token is only ever checked
against the HS256 secret, and an ES256/RS256 token only against a JWKS key of that type, so
neither `alg=none` nor key confusion (a public key used as an HMAC secret) can pass.
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt

from pipeline.errors import PipelineError, Unauthorized
from pipeline.jwks import JwksCache
from pipeline.settings import Settings

ASYMMETRIC = {"ES256": "EC", "RS256": "RSA"}
REQUIRED_CLAIMS = ["exp", "sub", "aud", "iss"]


@dataclass(frozen=True)
class AuthUser:
    id: UUID
    email: str | None
    role: str


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None,
        hs256_secret: str | None = None,
        jwks_cache_seconds: float = 600,
        jwks_refetch_seconds: float = 30,
        jwks_timeout_seconds: float = 3,
        allow_anonymous: bool = False,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.allow_anonymous = allow_anonymous
        self._hs256_secret = hs256_secret
        self.jwks = (
            JwksCache(
                jwks_url,
                cache_seconds=jwks_cache_seconds,
                refetch_seconds=jwks_refetch_seconds,
                timeout_seconds=jwks_timeout_seconds,
            )
            if jwks_url
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier":
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        return cls(
            issuer=settings.issuer,
            audience=settings.jwt_audience,
            jwks_url=settings.jwks_url,
            hs256_secret=secret,
            jwks_cache_seconds=settings.jwks_cache_seconds,
            jwks_refetch_seconds=settings.jwks_refetch_seconds,
            jwks_timeout_seconds=settings.jwks_timeout_seconds,
            allow_anonymous=settings.allow_anonymous_users,
        )

    def verify(self, token: str) -> AuthUser:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("The access token is malformed.") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not (kid is None or isinstance(kid, str)):
            raise Unauthorized("The access token's header is malformed.")
        key = self._key_for(alg, kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Your session has expired. Please sign in again.") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("The access token is not valid.", {"reason": str(exc)}) from exc
        user = _user_from(claims)
        if claims.get("is_anonymous") is True and not self.allow_anonymous:
            raise PipelineError(
                "ANONYMOUS_USER",
                "Guest sessions cannot use this service. Sign in with your email to train "
                "and convert voices.",
            )
        return user

    def _key_for(self, alg: str, kid: str | None) -> Any:
        if alg == "HS256" and self._hs256_secret:
            return self._hs256_secret
        if alg in ASYMMETRIC and self.jwks is not None:
            if kid is None:
                raise Unauthorized("The access token does not name its signing key.")
            signing_key = self.jwks.key(kid)
            if signing_key.key_type != ASYMMETRIC[alg] or signing_key.algorithm_name != alg:
                raise Unauthorized("The access token's algorithm does not match its key.")
            return signing_key.key
        raise Unauthorized("The access token uses an algorithm that is not accepted.", {"alg": alg})


def _user_from(claims: dict[str, Any]) -> AuthUser:
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError as exc:
        raise Unauthorized("The access token does not name a user.") from exc
    role = str(claims.get("role", "authenticated"))
    if role != "authenticated":
        raise Unauthorized("Sign in to use this.", {"role": role})
    return AuthUser(id=user_id, email=claims.get("email"), role=role)
