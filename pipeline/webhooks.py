"""Standard Webhooks signatures over `{webhook-id}.{webhook-timestamp}.{body}`.

`v1` is HMAC-SHA256 with a shared secret (`whsec_<base64>`); `v1a` is Ed25519, verified
against a public key (`whpk_<base64>`) and made with a secret key (`whsk_<base64>`). The
header may carry several space-separated signatures; any one valid signature suffices.
"""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from pipeline.errors import Unauthorized

TOLERANCE_SECONDS = 5 * 60


def _decode_key(value: str, prefix: str) -> bytes:
    raw = value.removeprefix(prefix)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a valid {prefix}… key") from exc


@dataclass(frozen=True)
class WebhookKeys:
    hmac_secret: bytes | None = None
    public_key: VerifyKey | None = None

    @classmethod
    def parse(cls, secret: str | None, public_key: str | None) -> "WebhookKeys":
        return cls(
            hmac_secret=_decode_key(secret, "whsec_") if secret else None,
            public_key=VerifyKey(_decode_key(public_key, "whpk_")) if public_key else None,
        )


def signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: WebhookKeys,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """The verified webhook id; raises Unauthorized for anything else."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise Unauthorized("Missing webhook signature headers.")
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise Unauthorized("The webhook timestamp is not a number.") from exc
    if abs((now if now is not None else time.time()) - sent) > tolerance:
        raise Unauthorized("The webhook timestamp is outside the allowed window.")
    content = signed_content(msg_id, timestamp, body)
    for item in signatures.split():
        version, _, encoded = item.partition(",")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if _matches(version, signature, content, keys):
            return msg_id
    raise Unauthorized("No valid webhook signature.")


def _matches(version: str, signature: bytes, content: bytes, keys: WebhookKeys) -> bool:
    if version == "v1" and keys.hmac_secret:
        expected = hmac.new(keys.hmac_secret, content, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)
    if version == "v1a" and keys.public_key is not None:
        try:
            keys.public_key.verify(content, signature)
        except (BadSignatureError, ValueError):
            return False
        return True
    return False


def sign_v1(secret: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_v1a(secret_key: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """`secret_key` is `whsk_` + base64 of a 32-byte seed or a 64-byte libsodium secret key."""
    raw = _decode_key(secret_key, "whsk_")
    signed = SigningKey(raw[:32]).sign(signed_content(msg_id, timestamp, body))
    return "v1a," + base64.b64encode(signed.signature).decode()


def new_ed25519_keypair() -> tuple[str, str]:
    """(`whsk_…`, `whpk_…`) for a relay and the API it signs for."""
    key = SigningKey.generate()
    secret = base64.b64encode(bytes(key)).decode()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    return f"whsk_{secret}", f"whpk_{public}"
