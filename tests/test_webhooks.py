"""Signed pushes to POST /events/r2: only valid Standard Webhooks signatures get in."""

import base64
import json
import time
from uuid import uuid4

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks import Webhook

from pipeline.webhooks import WebhookKeys, sign_v1, sign_v1a, verify
from tests.conftest import WEBHOOK_SECRET

BODY = json.dumps(
    {
        "account": "acct",
        "action": "PutObject",
        "bucket": "elsewhere",
        "object": {"key": "not/ours.wav", "size": 3, "eTag": "abc"},
        "eventTime": "2026-11-21T10:00:00Z",
    }
).encode()


def _secret() -> bytes:
    return base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))


def _headers(signature: str, msg_id: str | None = None, ts: int | None = None) -> dict:
    return {
        "webhook-id": msg_id or f"msg_{uuid4().hex}",
        "webhook-timestamp": str(ts if ts is not None else int(time.time())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def _post(api_url, headers, body=BODY) -> httpx.Response:
    return httpx.post(f"{api_url}/events/r2", content=body, headers=headers)


def _v1a(relay_secret_key, headers, body=BODY) -> dict:
    headers["webhook-signature"] = sign_v1a(
        relay_secret_key, headers["webhook-id"], headers["webhook-timestamp"], body
    )
    return headers


def _v1(headers, body=BODY) -> dict:
    headers["webhook-signature"] = sign_v1(
        _secret(), headers["webhook-id"], headers["webhook-timestamp"], body
    )
    return headers


def test_valid_v1a_and_v1_pass(api_url, relay_secret_key) -> None:
    for headers in (_v1a(relay_secret_key, _headers("")), _v1(_headers(""))):
        response = _post(api_url, headers)
        assert response.status_code == 200, response.text
        assert response.json()["outcomes"][0]["outcome"] == "ignored"


def test_several_signatures_in_one_header(api_url, relay_secret_key) -> None:
    headers = _v1(_headers(""))
    headers["webhook-signature"] = "v1,AAAA v2,xyz " + headers["webhook-signature"]
    assert _post(api_url, headers).status_code == 200


def test_independent_implementations_verify() -> None:
    """Signatures made by the `standardwebhooks` package (v1) and by `cryptography` (v1a)."""
    msg_id, now = "msg_compat", int(time.time())
    from datetime import UTC, datetime

    v1 = Webhook(WEBHOOK_SECRET).sign(msg_id, datetime.fromtimestamp(now, UTC), BODY.decode())
    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes_raw()
    signed = private.sign(f"{msg_id}.{now}.".encode() + BODY)
    v1a = "v1a," + base64.b64encode(signed).decode()
    keys = WebhookKeys.parse(WEBHOOK_SECRET, "whpk_" + base64.b64encode(raw_public).decode())
    assert verify(_headers(v1, msg_id, now), BODY, keys) == msg_id
    assert verify(_headers(v1a, msg_id, now), BODY, keys) == msg_id
    # And ours verifies under the standardwebhooks package.
    ours = sign_v1(_secret(), msg_id, str(now), BODY)
    assert Webhook(WEBHOOK_SECRET).verify(BODY, _headers(ours, msg_id, now)) is not None


@pytest.mark.parametrize(
    "case",
    [
        "tampered body",
        "wrong key",
        "stale",
        "future",
        "missing id",
        "missing signature",
        "garbage base64",
        "unknown version",
        "non-numeric timestamp",
        "empty signature",
    ],
)
def test_bad_signatures_are_401(api_url, relay_secret_key, case) -> None:
    other_secret = "whsk_" + base64.b64encode(bytes(range(32))).decode()
    now = int(time.time())
    headers = {
        "tampered body": lambda: _v1a(relay_secret_key, _headers("")),
        "wrong key": lambda: _v1a(other_secret, _headers("")),
        "stale": lambda: _v1a(relay_secret_key, _headers("", ts=now - 301)),
        "future": lambda: _v1a(relay_secret_key, _headers("", ts=now + 360)),  # never 300 s
        "missing id": lambda: {k: v for k, v in _v1(_headers("")).items() if k != "webhook-id"},
        "missing signature": lambda: {
            k: v for k, v in _headers("").items() if k != "webhook-signature"
        },
        "garbage base64": lambda: _headers("v1a,!!!not-base64!!! v1,%%%"),
        "unknown version": lambda: _headers("v9," + base64.b64encode(b"x" * 32).decode()),
        "non-numeric timestamp": lambda: _headers("v1,AAAA") | {"webhook-timestamp": "soon"},
        "empty signature": lambda: _headers(""),
    }[case]()
    body = BODY.replace(b"PutObject", b"DeleteObject") if case == "tampered body" else BODY
    response = _post(api_url, headers, body)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_signed_but_malformed_body_is_422(api_url) -> None:
    for body in (b"{not json", b'{"action": "PutObject"}', b"[1, 2]"):
        response = _post(api_url, _v1(_headers(""), body), body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "VALIDATION_FAILED"
