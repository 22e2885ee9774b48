"""Auth under attack: the JWKS cache refetches for unknown keys at most once per interval,
keeps its last good set through an outage, drops removed keys after the cache period and
gives up quickly on a hanging endpoint (a 503, our outage, when it has no keys at all); a
token header of any malformed shape is a 401; anonymous Supabase users are refused unless
allowed."""

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from uuid import uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from endpoints.app import create_app
from pipeline.auth import TokenVerifier
from pipeline.errors import PipelineError, Unauthorized, Unavailable
from pipeline.local.issuer import JWKS_PATH, ThreadedServer
from pipeline.local.seaweed import free_port


@dataclass
class FakeAuth:
    """A JWKS endpoint whose keys, health and speed a test controls, counting its requests."""

    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    failing: bool = False
    hang_seconds: float = 0.0
    hits: int = 0
    base: str = ""

    def jwks(self) -> dict:
        public = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            public.append(jwk | {"kid": kid, "alg": "ES256", "use": "sig"})
        return {"keys": public}

    def token(self, kid: str, key: ec.EllipticCurvePrivateKey | None = None, **claims) -> str:
        now = int(time.time())
        body = {
            "iss": f"{self.base}/auth/v1",
            "aud": "authenticated",
            "sub": str(uuid4()),
            "role": "authenticated",
            "exp": now + 600,
        } | claims
        return jwt.encode(body, key or self.keys[kid], "ES256", headers={"kid": kid})


@pytest.fixture
def auth() -> Iterator[FakeAuth]:
    fake = FakeAuth(keys={"a": ec.generate_private_key(ec.SECP256R1())})

    async def jwks(_: Request) -> JSONResponse:
        fake.hits += 1
        if fake.hang_seconds:
            time.sleep(fake.hang_seconds)
        if fake.failing:
            return JSONResponse({"error": "down"}, status_code=503)
        return JSONResponse(fake.jwks())

    port = free_port()
    server = ThreadedServer(Starlette(routes=[Route(JWKS_PATH, jwks)]), port).start()
    fake.base = f"http://127.0.0.1:{port}"
    yield fake
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _verifier(auth: FakeAuth, **options) -> TokenVerifier:
    return TokenVerifier(
        issuer=f"{auth.base}/auth/v1",
        audience="authenticated",
        jwks_url=f"{auth.base}{JWKS_PATH}",
        **options,
    )


def test_unknown_kids_cannot_force_a_fetch_per_request(auth) -> None:
    verifier = _verifier(auth)
    verifier.verify(auth.token("a"))
    assert auth.hits == 1
    stranger = ec.generate_private_key(ec.SECP256R1())
    for _ in range(20):
        with pytest.raises(Unauthorized):
            verifier.verify(auth.token(f"made-up-{uuid4()}", stranger))
    assert auth.hits == 1, "unknown kids within the refetch interval fetch nothing"
    verifier.verify(auth.token("a"))
    assert auth.hits == 1


def test_rotation_outage_and_removal_follow_the_cache_rules(auth) -> None:
    verifier = _verifier(auth, jwks_cache_seconds=600, jwks_refetch_seconds=30)
    clock = Clock()
    verifier.jwks._clock = clock
    old = auth.token("a")
    verifier.verify(old)

    # A new key appears: a token naming it refetches once the interval has passed.
    auth.keys["b"] = ec.generate_private_key(ec.SECP256R1())
    clock.now += 5
    with pytest.raises(Unauthorized):
        verifier.verify(auth.token("b"))  # within 30 s of the last fetch: not yet
    clock.now += 30
    assert verifier.verify(auth.token("b"))
    assert auth.hits == 2

    # Auth goes down: the last good set keeps everyone signed in, and failing fetches are
    # not retried on every request.
    auth.failing = True
    clock.now += 600
    assert verifier.verify(auth.token("b"))
    hits = auth.hits
    for _ in range(5):
        assert verifier.verify(auth.token("b"))
    assert auth.hits == hits

    # Auth is back without key "a": once the cache period has passed, "a" stops verifying.
    auth.failing = False
    del auth.keys["a"]
    clock.now += 601
    with pytest.raises(Unauthorized):
        verifier.verify(old)
    assert verifier.verify(auth.token("b"))


def test_concurrent_first_requests_wait_for_the_one_fetch(auth) -> None:
    """A fresh container's first requests arrive together: all are signed in, one fetch."""
    auth.hang_seconds = 0.5
    verifier = _verifier(auth, jwks_timeout_seconds=3)
    tokens = [auth.token("a") for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(verifier.verify, tokens))
    assert len(claims) == 8
    assert auth.hits == 1


def test_a_hanging_jwks_endpoint_is_given_up_on(auth) -> None:
    """Nothing to verify with is our outage, not a bad token: Unavailable (503), not 401."""
    auth.hang_seconds = 3
    verifier = _verifier(auth, jwks_timeout_seconds=0.5)
    with pytest.raises(Unavailable) as refused:
        verifier.verify(auth.token("a"))
    assert refused.value.details["retry_after"] > 0


@pytest.mark.parametrize("outage", ["failing", "closed port"])
def test_a_cold_api_during_an_auth_outage_answers_503_with_retry_after(
    auth, services, outage
) -> None:
    """A fresh container that cannot fetch the JWKS: every signed-in request is a 503 with
    Retry-After in the one error shape, so the page keeps its session and tries again."""
    if outage == "failing":
        auth.failing = True
        url = f"{auth.base}{JWKS_PATH}"
    else:
        url = f"http://127.0.0.1:{free_port()}{JWKS_PATH}"  # nothing listens there
    cold = replace(services, verifier=_verifier(auth, jwks_timeout_seconds=1))
    cold.verifier.jwks.url = url
    server = ThreadedServer(create_app(services=cold), free_port()).start()
    try:
        response = httpx.get(
            f"{server.url}/profiles", headers={"Authorization": f"Bearer {auth.token('a')}"}
        )
    finally:
        server.stop()
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "WWW-Authenticate" not in response.headers


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


MALFORMED_HEADERS = {
    "a JSON list": b'["ES256"]',
    "a JSON string": b'"ES256"',
    "a number": b"42",
    "alg a list": b'{"alg": ["ES256"], "kid": "k"}',
    "alg an object": b'{"alg": {"name": "ES256"}, "kid": "k"}',
    "alg a number": b'{"alg": 256, "kid": "k"}',
    "alg null": b'{"alg": null}',
    "no alg": b'{"kid": "k"}',
    "kid an object": b'{"alg": "ES256", "kid": {"x": 1}}',
    "kid a list": b'{"alg": "ES256", "kid": ["a", "b"]}',
    "kid a number": b'{"alg": "ES256", "kid": 7}',
    "not JSON": b"{alg: ES256",
    "not UTF-8": b"\xff\xfe\xfd",
    "crit unknown": b'{"alg": "ES256", "kid": "k", "crit": ["exp"]}',
    "huge nesting": b'{"alg": "ES256", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}


@pytest.mark.parametrize("name", list(MALFORMED_HEADERS))
def test_a_malformed_header_of_any_shape_is_a_401(alice, name) -> None:
    payload = _b64(json.dumps({"sub": str(alice.id), "exp": int(time.time()) + 60}).encode())
    token = f"{_b64(MALFORMED_HEADERS[name])}.{payload}.{_b64(b'sig')}"
    response = alice.client.get("/profiles", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_anonymous_users_are_refused_with_a_clear_message(stack, alice) -> None:
    token = stack.issuer.issue(alice.id, None, is_anonymous=True)
    response = alice.client.get("/quota", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "ANONYMOUS_USER"
    assert "Sign in with your email" in error["message"]


def test_a_setting_lets_anonymous_users_in(stack, settings) -> None:
    token = stack.issuer.issue(uuid4(), None, is_anonymous=True)
    strict = TokenVerifier.from_settings(settings)
    with pytest.raises(PipelineError):
        strict.verify(token)
    lenient = TokenVerifier.from_settings(
        settings.model_copy(update={"allow_anonymous_users": True})
    )
    assert lenient.verify(token).role == "authenticated"
