"""Access tokens: only well-formed, unexpired tokens for our audience and issuer, signed by a
key of the right type, get in; everything else is a 401 with the error body."""

import base64
import json
import time
from uuid import uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipeline.auth import TokenVerifier
from pipeline.errors import Unauthorized
from pipeline.local.issuer import JWKS_PATH, LocalIssuer, ThreadedServer
from pipeline.local.seaweed import free_port


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(issuer: LocalIssuer, **overrides) -> dict:
    now = int(time.time())
    base = {
        "iss": issuer.issuer,
        "aud": "authenticated",
        "sub": str(uuid4()),
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
    }
    return {k: v for k, v in (base | overrides).items() if v is not None}


@pytest.fixture(scope="module")
def issuer(stack) -> LocalIssuer:
    return stack.issuer


@pytest.fixture(scope="module")
def foreign_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _bad_tokens(issuer: LocalIssuer, foreign_key) -> dict[str, str]:
    kid = {"kid": issuer.kid}
    return {
        "malformed": "not.a.jwt",
        "garbage": "x" * 40,
        "expired": issuer.issue(uuid4(), ttl_seconds=-120),
        "wrong audience": jwt.encode(
            _claims(issuer, aud="anon"), issuer._key, "ES256", headers=kid
        ),
        "wrong issuer": jwt.encode(
            _claims(issuer, iss="https://evil.example/auth/v1"), issuer._key, "ES256", headers=kid
        ),
        "wrong key": jwt.encode(_claims(issuer), foreign_key, "ES256", headers=kid),
        "unknown kid": jwt.encode(_claims(issuer), foreign_key, "ES256", headers={"kid": "nope"}),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', **kid})}.{_b64(_claims(issuer))}.",
        "hs256 with public key": _hs256_confusion(issuer),
        "no exp": jwt.encode(_claims(issuer, exp=None), issuer._key, "ES256", headers=kid),
        "no sub": jwt.encode(_claims(issuer, sub=None), issuer._key, "ES256", headers=kid),
        "sub not a uuid": jwt.encode(
            _claims(issuer, sub="admin"), issuer._key, "ES256", headers=kid
        ),
        "anon role": jwt.encode(_claims(issuer, role="anon"), issuer._key, "ES256", headers=kid),
    }


def _public_pem(issuer: LocalIssuer) -> bytes:
    return issuer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hs256_confusion(issuer: LocalIssuer) -> str:
    """A token HMAC-signed with the public key, the classic algorithm-confusion forgery."""
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "JWT", "kid": issuer.kid})
    payload = _b64(_claims(issuer))
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(_public_pem(issuer), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_valid_local_token_gets_in(alice) -> None:
    assert alice.client.get("/quota").status_code == 200


def test_bad_tokens_get_401_with_error_body(alice, issuer, foreign_key) -> None:
    client = alice.client
    missing = client.get("/profiles", headers={"Authorization": ""})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "UNAUTHORIZED"
    basic = client.get("/profiles", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401
    for name, token in _bad_tokens(issuer, foreign_key).items():
        response = client.get("/profiles", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.text)
        body = response.json()["error"]
        assert body["code"] == "UNAUTHORIZED", name
        assert body["message"], name


def test_hs256_legacy_secret_only_when_configured(issuer) -> None:
    secret = "a-legacy-jwt-secret-of-at-least-32-bytes!"
    token = jwt.encode(_claims(issuer), secret, "HS256")
    with_secret = TokenVerifier(
        issuer=issuer.issuer, audience="authenticated", jwks_url=None, hs256_secret=secret
    )
    assert with_secret.verify(token).role == "authenticated"
    forged = jwt.encode(_claims(issuer), "another-secret-of-at-least-32-bytes!!", "HS256")
    with pytest.raises(Unauthorized):
        with_secret.verify(forged)
    without = TokenVerifier(issuer=issuer.issuer, audience="authenticated", jwks_url=None)
    with pytest.raises(Unauthorized):
        without.verify(token)


def test_rs256_from_jwks() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk |= {"kid": "rsa-1", "alg": "RS256", "use": "sig"}

    async def jwks(_):
        return JSONResponse({"keys": [jwk]})

    port = free_port()
    server = ThreadedServer(Starlette(routes=[Route(JWKS_PATH, jwks)]), port).start()
    try:
        base = f"http://127.0.0.1:{port}"
        verifier = TokenVerifier(
            issuer=f"{base}/auth/v1", audience="authenticated", jwks_url=f"{base}{JWKS_PATH}"
        )
        now = int(time.time())
        claims = {
            "iss": f"{base}/auth/v1",
            "aud": "authenticated",
            "sub": str(uuid4()),
            "role": "authenticated",
            "exp": now + 60,
        }
        good = jwt.encode(claims, key, "RS256", headers={"kid": "rsa-1"})
        assert str(verifier.verify(good).id) == claims["sub"]
        # An ES256 token naming the RSA key's kid is refused: the key decides the algorithm.
        es = jwt.encode(
            claims, ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": "rsa-1"}
        )
        with pytest.raises(Unauthorized):
            verifier.verify(es)
    finally:
        server.stop()
