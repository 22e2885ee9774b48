"""The project's signing keys, cached under our own rules rather than PyJWKClient's.

- A fresh set (younger than the cache period) answers every known `kid` without a fetch.
- A `kid` it does not know triggers a refetch at most once per refetch interval, by one
  thread at a time and never waited on by others, so tokens naming made-up keys cannot keep
  worker threads busy fetching.
- Before the first set has arrived there is nothing to answer from, so concurrent first
  requests (a fresh container under load) wait for the one fetch in flight, at most its
  timeout, instead of failing.
- A failed fetch keeps the last good set (an Auth outage does not sign everyone out); a
  successful one replaces it, so a key removed from the JWKS stops verifying once the cache
  period has passed.
- With no set at all (a cold container during an Auth outage) nothing can be verified: that
  is our dependency failing, not the person's token, so it is a 503 with Retry-After, never
  a 401 (the page signs out on a 401).
- Fetches have short timeouts.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from pipeline.errors import Unauthorized, Unavailable

log = logging.getLogger(__name__)

# How long a client is asked to wait when no keys could be fetched at all.
RETRY_AFTER_SECONDS = 5


class JwksCache:
    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 600,
        refetch_seconds: float = 30,
        timeout_seconds: float = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = threading.Lock()
        self.fetches = 0  # attempts made, for operators and tests

    def key(self, kid: str) -> jwt.PyJWK:
        """The key named `kid`; Unauthorized when the JWKS does not have it."""
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.cache_seconds
        if stale or (kid not in self._keys and self._may_refetch(now)):
            self._refresh(now)
        key = self._keys.get(kid)
        if key is None and self._fetched_at is None:
            raise Unavailable(
                "Sign-in cannot be checked right now. Please try again in a moment.",
                {"dependency": "auth", "retry_after": RETRY_AFTER_SECONDS},
            )
        if key is None:
            raise Unauthorized("The access token was signed with an unknown key.")
        return key

    def _may_refetch(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= self.refetch_seconds

    def _refresh(self, now: float) -> None:
        if self._fetched_at is None:
            # No set yet: wait for a fetch in flight (bounded by its timeout), then use it.
            if not self._lock.acquire(timeout=self.timeout_seconds + 1):
                return
        elif not self._lock.acquire(blocking=False):
            return  # another thread is fetching; answer from the set we have
        try:
            if self._tried_at is not None and now - self._tried_at < min(
                self.refetch_seconds, self.cache_seconds
            ):
                return
            self._tried_at = now
            self.fetches += 1
            try:
                keys = self._fetch()
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                log.warning("JWKS fetch from %s failed (%s); keeping the last set", self.url, exc)
                return
            self._keys, self._fetched_at = keys, now
        finally:
            self._lock.release()

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        response = httpx.get(self.url, timeout=self.timeout_seconds, follow_redirects=False)
        response.raise_for_status()
        data: Any = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in data["keys"]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue  # a key type or algorithm we do not use
        return keys
