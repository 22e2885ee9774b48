"""Building and delivering R2 notifications the way Cloudflare and the relay do."""

import json
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx

from pipeline.webhooks import sign_v1a


def r2_event(
    bucket: str, key: str, etag: str | None, size: int | None = None, action: str = "PutObject"
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key}
    if action != "DeleteObject":
        obj |= {"size": size or 1, "eTag": etag}
    return {
        "account": "test-account",
        "action": action,
        "bucket": bucket,
        "object": obj,
        "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def deliver(
    api_url: str, secret_key: str, payload: Any, msg_id: str | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    msg_id = msg_id or f"msg_{uuid4().hex}"
    timestamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": sign_v1a(secret_key, msg_id, timestamp, body),
    }
    return httpx.post(f"{api_url}/events/r2", content=body, headers=headers, timeout=60)
