"""The "Modal alone" path: pull R2 notifications from a Cloudflare Queue over its HTTP pull
API, hand each to the event handler, ack what was handled and retry the rest later.

`POST …/queues/{queue_id}/messages/pull` leases a batch; `POST …/messages/ack` takes
`acks` and `retries` (with `delay_seconds`) by `lease_id`. An un-acked lease simply expires
and the message comes back, so a crash here loses nothing.
"""

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from pipeline import redact
from pipeline.errors import PipelineError
from pipeline.settings import Settings
from schemas.events import EventOutcome, R2Event

log = logging.getLogger(__name__)


class QueueMessage(BaseModel):
    id: str
    body: Any = None
    lease_id: str
    attempts: int = 1
    timestamp_ms: int | None = None
    metadata: dict[str, Any] | None = None


class CloudflareQueue:
    def __init__(
        self,
        account_id: str,
        queue_id: str,
        api_token: str,
        *,
        base_url: str = "https://api.cloudflare.com/client/v4",
        client: httpx.Client | None = None,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/accounts/{account_id}/queues/{queue_id}/messages"
        self._client = client or httpx.Client(timeout=30)
        self._headers = {"Authorization": f"Bearer {api_token}"}

    @classmethod
    def from_settings(
        cls, settings: Settings, client: httpx.Client | None = None
    ) -> "CloudflareQueue":
        if not (settings.cf_account_id and settings.cf_queue_id and settings.cf_api_token):
            raise ValueError("set VC_CF_ACCOUNT_ID, VC_CF_QUEUE_ID and VC_CF_API_TOKEN")
        return cls(
            settings.cf_account_id,
            settings.cf_queue_id,
            settings.cf_api_token.get_secret_value(),
            base_url=settings.cf_api_base_url,
            client=client,
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._client.post(f"{self._url}/{path}", json=body, headers=self._headers)
        response.raise_for_status()
        payload = response.json()
        if not payload.get("success", False):
            raise RuntimeError(f"queue API refused {path}: {payload.get('errors')}")
        return payload.get("result") or {}

    def pull(self, batch_size: int = 50, visibility_timeout_ms: int = 60_000) -> list[QueueMessage]:
        result = self._post(
            "pull", {"batch_size": batch_size, "visibility_timeout_ms": visibility_timeout_ms}
        )
        return [QueueMessage.model_validate(m) for m in result.get("messages") or []]

    def ack(self, acks: list[str], retries: dict[str, int]) -> dict[str, Any]:
        body = {
            "acks": [{"lease_id": lease} for lease in acks],
            "retries": [{"lease_id": lease, "delay_seconds": d} for lease, d in retries.items()],
        }
        return self._post("ack", body)


def decode_body(body: Any) -> Any:
    """Queue bodies arrive as an object, a JSON string, or base64 of JSON."""
    if isinstance(body, dict | list):
        return body
    if not isinstance(body, str | bytes):
        raise ValueError("empty or non-text message body")
    text = body.decode() if isinstance(body, bytes) else body
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("message body is neither JSON nor base64 JSON") from exc


@dataclass
class PullReport:
    pulled: int = 0
    acked: int = 0
    retried: int = 0
    invalid: int = 0
    outcomes: list[EventOutcome] = field(default_factory=list)


def consume_once(
    queue: CloudflareQueue,
    handle: Callable[[R2Event], EventOutcome],
    *,
    batch_size: int = 50,
    retry_delay_seconds: int = 30,
) -> PullReport:
    """One pull → handle → ack round. Messages that can never parse are acked (and logged):
    retrying them would not help, and the reconciler still finds their uploads."""
    report = PullReport()
    messages = queue.pull(batch_size)
    report.pulled = len(messages)
    acks: list[str] = []
    retries: dict[str, int] = {}
    for message in messages:
        try:
            event = R2Event.model_validate(decode_body(message.body))
        except (ValueError, ValidationError) as exc:
            log.warning(
                "dropping unreadable queue message %s: %s", message.id, redact.text(str(exc))
            )
            report.invalid += 1
            acks.append(message.lease_id)
            continue
        try:
            report.outcomes.append(handle(event))
            acks.append(message.lease_id)
        except (PipelineError, OSError, httpx.HTTPError) as exc:
            log.warning("will retry queue message %s: %s", message.id, redact.text(str(exc)))
            retries[message.lease_id] = min(retry_delay_seconds * message.attempts, 12 * 3600)
    if acks or retries:
        queue.ack(acks, retries)
    report.acked, report.retried = len(acks), len(retries)
    return report
