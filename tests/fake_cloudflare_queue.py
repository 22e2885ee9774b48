"""A fake of the Cloudflare Queues HTTP pull API (as documented), served through respx:
leases with a visibility timeout, acks, and retries with a delay."""

import json
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx
import respx

BASE = "https://api.cloudflare.test/client/v4"


@dataclass
class _Message:
    id: str
    body: Any
    attempts: int = 0
    visible_at: float = 0.0
    lease_id: str | None = None


@dataclass
class FakeQueue:
    account_id: str = "acct"
    queue_id: str = "queue"
    token: str = "cf-token"
    messages: dict[str, _Message] = field(default_factory=dict)
    clock: float = 0.0
    ack_requests: list[dict] = field(default_factory=list)

    def send(self, body: Any) -> str:
        message = _Message(id=uuid4().hex, body=body)
        self.messages[message.id] = message
        return message.id

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(403, json={"success": False, "errors": [{"code": 10000}]})
        return None

    def _pull(self, request: httpx.Request) -> httpx.Response:
        if denied := self._check_auth(request):
            return denied
        body = json.loads(request.content or b"{}")
        batch, visibility = body.get("batch_size", 10), body.get("visibility_timeout_ms", 30000)
        out = []
        for message in self.messages.values():
            if len(out) >= batch or message.visible_at > self.clock:
                continue
            message.attempts += 1
            message.lease_id = f"lease-{uuid4().hex}"
            message.visible_at = self.clock + visibility / 1000
            out.append(
                {
                    "id": message.id,
                    "body": message.body,
                    "attempts": message.attempts,
                    "lease_id": message.lease_id,
                    "timestamp_ms": int(time.time() * 1000),
                    "metadata": {"CF-Content-Type": "json"},
                }
            )
        return httpx.Response(
            200,
            json={
                "success": True,
                "errors": [],
                "result": {"message_backlog_count": len(self.messages), "messages": out},
            },
        )

    def _ack(self, request: httpx.Request) -> httpx.Response:
        if denied := self._check_auth(request):
            return denied
        body = json.loads(request.content)
        self.ack_requests.append(body)
        by_lease = {m.lease_id: m for m in self.messages.values() if m.lease_id}
        for ack in body.get("acks", []):
            if (message := by_lease.get(ack["lease_id"])) is not None:
                del self.messages[message.id]
        for retry in body.get("retries", []):
            if (message := by_lease.get(retry["lease_id"])) is not None:
                message.visible_at = self.clock + retry.get("delay_seconds", 0)
                message.lease_id = None
        return httpx.Response(
            200,
            json={
                "success": True,
                "errors": [],
                "result": {
                    "ackCount": len(body.get("acks", [])),
                    "retryCount": len(body.get("retries", [])),
                },
            },
        )

    def mount(self, router: respx.MockRouter) -> None:
        prefix = f"{BASE}/accounts/{self.account_id}/queues/{self.queue_id}/messages"
        router.post(f"{prefix}/pull").mock(side_effect=self._pull)
        router.post(f"{prefix}/ack").mock(side_effect=self._ack)
